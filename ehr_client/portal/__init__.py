"""The patient's portal: a web app served locally, whose crypto runs in the browser.

The server (`ehr portal`) serves the built page (`make portal`, from portal/) and an API that
hands out ciphertext, public chain facts and relaying, never keys or plaintext; see
:mod:`ehr_client.portal.app`.
"""

from ehr_client.portal.app import CONTENT_SECURITY_POLICY, Clients, PortalServices, create_app
from ehr_client.portal.errors import MethodRefused, NoRelayer, RequestTooLarge
from ehr_client.portal.server import PortalServer, default_static_dir

__all__ = ["CONTENT_SECURITY_POLICY", "Clients", "MethodRefused", "NoRelayer", "PortalServer", "PortalServices",
           "RequestTooLarge", "create_app", "default_static_dir"]
