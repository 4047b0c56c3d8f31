"""The outside world behind small interfaces: statement parsers, the eligibility review API."""
