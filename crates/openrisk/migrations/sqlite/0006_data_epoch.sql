-- Which copy of the data this is. Restoring a backup draws a new value: cache keys carry it, so no
-- entry cached from the data before the restore can be served after it.
CREATE TABLE data_epoch (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    epoch BIGINT NOT NULL
);
INSERT INTO data_epoch (id, epoch) VALUES (1, random());
