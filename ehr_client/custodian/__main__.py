"""`python -m ehr_client.custodian ...` is the `ehr` command, for hosts that run a custodian from
the package without the console script: `python -m ehr_client.custodian custodian serve ...`."""

from ehr_client.cli import main

if __name__ == "__main__":
    main()
