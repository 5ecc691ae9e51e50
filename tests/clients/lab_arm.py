"""The lab's fake ARM as azure-mgmt-sql reaches it: the first line of
`milink lab up --json` (read from stdin), a TokenCredential that hands out
the lab's bearer token, and a SqlManagementClient that trusts the lab's CA."""

import json
import sys

from azure.core.credentials import AccessToken, AccessTokenInfo
from azure.mgmt.sql import SqlManagementClient

lab = json.loads(sys.stdin.readline())
arm = lab["arm"]


class LabToken:
    """The lab's bearer token, as a TokenCredential."""

    def get_token(self, *scopes, **kwargs):
        return AccessToken(arm["token"], 4102444800)

    def get_token_info(self, *scopes, options=None):
        return AccessTokenInfo(arm["token"], 4102444800)


client = SqlManagementClient(
    LabToken(),
    arm["subscription_id"],
    base_url=arm["base_url"],
    connection_verify=arm["ca_cert"],
)
