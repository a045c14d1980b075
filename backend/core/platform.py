"""Who the platform is: its name on receipts and as an agreement party, its privacy contact, its
jurisdiction."""

PLATFORM = {"name": "KnowLedger platform", "contact": "privacy@knowledger.example", "jurisdiction": "CN"}
