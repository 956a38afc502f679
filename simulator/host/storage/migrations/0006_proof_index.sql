-- The replay check (simulator/host/rules.py, replayed) asks for an approved, not reversed record with a proof:
-- an index of exactly those rows, so that PostgreSQL's planner takes it even while the table is young and its
-- statistics say it is small (it chose the whole records_approved_once index and read it all, over 1 ms a check).
DROP INDEX IF EXISTS records_proof;
CREATE INDEX IF NOT EXISTS records_proof_approved ON records (proof) WHERE approved = 1 AND reversed = 0 AND method <> 'reverse';
