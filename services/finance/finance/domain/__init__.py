"""Pure finance rules: statement lines, matching, the exceptions workflow, reports. No I/O."""
