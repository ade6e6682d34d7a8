"""Supplier invoices: what one collection of a channel does (``collection``) and how an account holder is
invited to type the credentials they alone know (``invitations``). The portals themselves are in ``connectors/``."""
