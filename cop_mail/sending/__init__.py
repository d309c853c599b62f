"""Sending: campaigns, delivery planning, batch claims, the SMTP messenger and throttling.

Message building lives in `mime` (a per-campaign `MessageSkeleton`, per-recipient `render`) and
`dkim_signer` (`DkimSigner.sign`, RSA through OpenSSL); see their docstrings.
"""
