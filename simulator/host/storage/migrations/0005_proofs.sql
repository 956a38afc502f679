-- A payment's one-time proof (a card's cryptogram, as the host's token of it: never the cryptogram itself) is
-- kept on the approved record, so that the same proof is approved once, whichever terminal sends it again
-- (simulator/host/rules.py, replayed).
ALTER TABLE records ADD COLUMN proof TEXT;
CREATE INDEX IF NOT EXISTS records_proof ON records (proof);
