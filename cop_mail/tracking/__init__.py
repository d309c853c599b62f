"""Opt-in engagement tracking: an open pixel and click redirects in bulk campaigns.

Off until an owner switches it on (`cop_mail.community`). When on, each bulk campaign's
compiled HTML gets its links rewritten to signed per-delivery redirects that may only lead to
a link stored for that campaign (`links`), hits are recorded per delivery with machine ones
(privacy proxies, link scanners) flagged apart (`machine`, `record`), and reports count them
(`stats`). A first human click is an explicit action; opens never are.
"""
