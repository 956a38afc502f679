-- Online PIN (issue 14): the wrong PIN tries of each card, by the host's card token, counted by the issuer
-- (simulator/host/pin_check.py): a right PIN deletes the row, the third wrong one in a row answers 75 and every
-- later PIN for the card too, until the operator resets it (posterm host issuer pin-reset). Never a PIN or a block.
CREATE TABLE IF NOT EXISTS pin_tries (
    pan_token TEXT PRIMARY KEY,
    wrong INTEGER NOT NULL,
    updated_at TEXT NOT NULL
);
