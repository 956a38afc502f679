-- PostgreSQL only: the host references come from a sequence (SQLite counts them in meta's 'seq' row,
-- inside its one-writer-at-a-time transactions).
CREATE SEQUENCE IF NOT EXISTS reference_seq AS BIGINT START WITH 1;
