"""`python -m ehr_client.cli` is the `ehr` command (for hosts without the console script)."""

from ehr_client.cli import main

if __name__ == "__main__":
    main()
