"""Write side: the ledgers, the keystore and their writers."""
