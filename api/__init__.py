"""HTTP boundary: the KMS wire protocol, SigV4 and the composition root."""
