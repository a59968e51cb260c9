"""Small service modules the routes call (the case machinery itself lives in urbaneye/)."""
