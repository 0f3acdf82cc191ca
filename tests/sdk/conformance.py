#!/usr/bin/env python3
"""Conformance of the simulated tenant with Microsoft's own client libraries, which nobody here wrote: the Python
Graph SDK (`msgraph-sdk`) for every Graph call licensewatch makes and the README invites users to make, and MSAL for
the token endpoint (a client secret and a certificate). The simulator runs over HTTPS (`licensewatch sim --tls`):
MSAL accepts only https authorities.

Usage: tests/sdk/conformance.py PATH/TO/licensewatch   (scripts/test.sh installs the packages and runs it)
Prints one line per check and a closing `N passed, M failed` line; exits non-zero when a check fails.
"""
import asyncio
import csv
import datetime
import hashlib
import io
import json
import os
import ssl
import subprocess
import sys
import traceback
import urllib.request
from urllib.parse import urlparse

import httpx
import msal
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from kiota_abstractions.authentication import (AccessTokenProvider, AllowedHostsValidator,
                                               BaseBearerTokenAuthenticationProvider)
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph import GraphServiceClient
from msgraph.generated.audit_logs.directory_audits.directory_audits_request_builder import \
    DirectoryAuditsRequestBuilder
from msgraph.generated.groups.groups_request_builder import GroupsRequestBuilder
from msgraph.generated.groups.item.assign_license.assign_license_post_request_body import \
    AssignLicensePostRequestBody as GroupAssignLicenseBody
from msgraph.generated.groups.item.members_with_license_errors.members_with_license_errors_request_builder import \
    MembersWithLicenseErrorsRequestBuilder
from msgraph.generated.models.assigned_license import AssignedLicense
from msgraph.generated.models.body_type import BodyType
from msgraph.generated.models.email_address import EmailAddress
from msgraph.generated.models.item_body import ItemBody
from msgraph.generated.models.message import Message
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.recipient import Recipient
from msgraph.generated.models.user import User
from msgraph.generated.users.item.assign_license.assign_license_post_request_body import \
    AssignLicensePostRequestBody
from msgraph.generated.users.item.send_mail.send_mail_post_request_body import SendMailPostRequestBody
from msgraph.generated.users.users_request_builder import UsersRequestBuilder
from msgraph_core import GraphClientFactory

CLIENT_ID = "0f0f0f0f-1111-2222-3333-444455556666"
# What license-check selects (shared/src/graph/types.rs, USER_SELECT).
USER_SELECT = ["id", "userPrincipalName", "displayName", "mail", "accountEnabled", "userType", "usageLocation",
               "createdDateTime", "assignedLicenses", "assignedPlans", "licenseAssignmentStates",
               "onPremisesSyncEnabled", "proxyAddresses"]
E3 = "6fd2c87f-b296-42f0-b197-1e91e994b900"
PBI = "a403ebcc-fae0-4ca2-8c8c-7a907fd6c235"
KIOSK_GROUP = "c7a1f1a2-0a4e-4d1c-9a3e-000000000f02"
FACULTY_GROUP = "c7a1f1a2-0a4e-4d1c-9a3e-000000000f01"
DOMAIN = "contoso.onmicrosoft.com"


def upn(nick):
    return f"{nick}@{DOMAIN}"


class Sim:
    """`licensewatch sim --tls` on a free port."""

    def __init__(self, exe):
        self.proc = subprocess.Popen([exe, "sim", "--tls", "--port", "0"], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        info = json.loads(self.proc.stdout.readline())
        self.base, self.tenant, self.ca = info["base_url"], info["tenant_id"], info["ca_file"]
        self.ssl = ssl.create_default_context(cafile=self.ca)

    def control(self, path, body=None, method="POST"):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, context=self.ssl) as r:
            text = r.read().decode()
            return json.loads(text) if text else None

    def stop(self):
        self.proc.kill()
        self.proc.wait()


class MsalTokens(AccessTokenProvider):
    """Tokens for the Graph SDK from MSAL's client-credentials flow against the simulator."""

    def __init__(self, app, host):
        self.app = app
        self.host = host

    async def get_authorization_token(self, uri, additional_authentication_context={}):
        result = self.app.acquire_token_for_client(scopes=["https://graph.microsoft.com/.default"])
        if "access_token" not in result:
            raise RuntimeError(f"no token: {result}")
        return result["access_token"]

    def get_allowed_hosts_validator(self):
        return AllowedHostsValidator([self.host])


def msal_app(sim, credential):
    os.environ["REQUESTS_CA_BUNDLE"] = sim.ca  # MSAL uses requests, which reads this
    return msal.ConfidentialClientApplication(CLIENT_ID, client_credential=credential,
                                              authority=f"{sim.base}/{sim.tenant}", instance_discovery=False)


def graph_client(sim, app):
    http = httpx.AsyncClient(verify=sim.ssl, base_url=f"{sim.base}/v1.0", timeout=30)
    http = GraphClientFactory.create_with_default_middleware(client=http)
    auth = BaseBearerTokenAuthenticationProvider(MsalTokens(app, urlparse(sim.base).hostname))
    from msgraph.graph_request_adapter import GraphRequestAdapter
    adapter = GraphRequestAdapter(auth, client=http)
    adapter.base_url = f"{sim.base}/v1.0"
    return GraphServiceClient(request_adapter=adapter)


def certificate_credential():
    """A fresh RSA key and self-signed certificate, as an app registration's certificate credential."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "licensewatch-conformance")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    pem_key = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    der = cert.public_bytes(serialization.Encoding.DER)
    return {"private_key": pem_key, "thumbprint": hashlib.sha1(der).hexdigest(),
            "public_certificate": cert.public_bytes(serialization.Encoding.PEM).decode()}


async def checks(sim, graph):
    """(name, coroutine) pairs; each raises on a mismatch."""

    async def users_select_top_and_next_link():
        q = UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(
            select=["id", "userPrincipalName", "assignedLicenses", "licenseAssignmentStates", "mail"], top=5)
        page = await graph.users.get(request_configuration=RequestConfiguration(query_parameters=q))
        assert len(page.value) == 5, len(page.value)
        assert all(u.user_principal_name and u.id for u in page.value)
        assert page.odata_next_link, "a next link"
        seen = {u.id for u in page.value}
        pages = 1
        while page.odata_next_link:
            page = await graph.users.with_url(page.odata_next_link).get()
            seen |= {u.id for u in page.value}
            pages += 1
        assert len(seen) >= 40 and pages >= 8, (len(seen), pages)
        # Every field license-check reads (shared/src/graph/types.rs USER_SELECT) parses into the SDK's model.
        q = UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(select=USER_SELECT, top=999)
        everyone = (await graph.users.get(request_configuration=RequestConfiguration(query_parameters=q))).value
        alex = [u for u in everyone if u.user_principal_name == upn("alex.wilber")][0]
        assert any(str(l.sku_id) == E3 for l in alex.assigned_licenses), alex.assigned_licenses
        assert any(p.service == "exchange" and p.capability_status == "Enabled" for p in alex.assigned_plans)
        assert alex.account_enabled is True and alex.user_type == "Member" and alex.usage_location
        assert alex.created_date_time and alex.mail and any(a.startswith("SMTP:") for a in alex.proxy_addresses)
        states = [s for s in alex.license_assignment_states if str(s.sku_id) == E3]
        assert states and states[0].state == "Active" and states[0].error == "None", states

    async def user_by_id_and_by_upn():
        by_upn = await graph.users.by_user_id(upn("megan.bowen")).get()
        assert by_upn.user_principal_name == upn("megan.bowen")
        by_id = await graph.users.by_user_id(by_upn.id).get()
        assert by_id.id == by_upn.id
        guest = await graph.users.by_user_id(f"partner.one_fabrikam.com#EXT#@{DOMAIN}").get()
        assert guest.user_principal_name.startswith("partner.one_fabrikam.com#EXT#"), guest.user_principal_name

    async def subscribed_skus():
        skus = await graph.subscribed_skus.get()
        e3 = [s for s in skus.value if str(s.sku_id) == E3][0]
        assert e3.sku_part_number == "ENTERPRISEPACK"
        assert e3.prepaid_units.enabled >= e3.consumed_units > 0
        assert e3.service_plans and e3.service_plans[0].service_plan_name

    async def groups_with_license_errors():
        q = GroupsRequestBuilder.GroupsRequestBuilderGetQueryParameters(
            filter="hasMembersWithLicenseErrors eq true", select=["id", "displayName"])
        groups = await graph.groups.get(request_configuration=RequestConfiguration(query_parameters=q))
        ids = {g.id for g in groups.value}
        assert FACULTY_GROUP in ids, ids
        assert all(g.display_name for g in groups.value)

    async def members_with_license_errors():
        q = MembersWithLicenseErrorsRequestBuilder.MembersWithLicenseErrorsRequestBuilderGetQueryParameters(
            select=["id", "userPrincipalName", "licenseAssignmentStates"])
        members = await graph.groups.by_group_id(FACULTY_GROUP).members_with_license_errors.get(
            request_configuration=RequestConfiguration(query_parameters=q))
        users = [m for m in members.value if isinstance(m, User)]
        assert users, [type(m).__name__ for m in members.value]
        states = users[0].license_assignment_states
        assert states and any(s.error and s.error != "None" for s in states), states
        assert any(s.assigned_by_group == FACULTY_GROUP for s in states)

    async def user_assign_license():
        joni = await graph.users.by_user_id(upn("joni.sherman")).assign_license.post(
            AssignLicensePostRequestBody(add_licenses=[AssignedLicense(sku_id=PBI, disabled_plans=[])],
                                         remove_licenses=[]))
        assert joni.user_principal_name == upn("joni.sherman")
        again = await graph.users.by_user_id(upn("joni.sherman")).get()
        assert again.id == joni.id

    async def group_assign_license():
        group = await graph.groups.by_group_id(KIOSK_GROUP).assign_license.post(
            GroupAssignLicenseBody(add_licenses=[AssignedLicense(sku_id=PBI, disabled_plans=[])],
                                   remove_licenses=[]))
        assert group is None or group.id == KIOSK_GROUP

    async def reprocess_license_assignment():
        user = await graph.users.by_user_id(upn("teacher11")).reprocess_license_assignment.post()
        assert user.user_principal_name == upn("teacher11")

    async def directory_audits_filtered():
        since = "2026-10-01T00:00:00Z"
        q = DirectoryAuditsRequestBuilder.DirectoryAuditsRequestBuilderGetQueryParameters(
            filter=f"activityDateTime ge {since} and activityDisplayName eq 'Change user license'")
        audits = await graph.audit_logs.directory_audits.get(
            request_configuration=RequestConfiguration(query_parameters=q))
        assert audits.value, "the scenario's failed assignments"
        a = audits.value[0]
        assert a.activity_display_name == "Change user license"
        assert a.activity_date_time and a.correlation_id
        assert a.target_resources and a.target_resources[0].user_principal_name

    async def send_mail():
        body = SendMailPostRequestBody(
            message=Message(subject="Conformance", body=ItemBody(content_type=BodyType.Text, content="x"),
                            to_recipients=[Recipient(email_address=EmailAddress(address="lee.gu@contoso.com"))]),
            save_to_sent_items=False)
        await graph.users.by_user_id(upn("it.admin")).send_mail.post(body)
        mail = sim.control("/_sim/mail", method="GET")
        last = mail[-1]["message"]
        assert last["subject"] == "Conformance", last
        assert last["toRecipients"][0]["emailAddress"]["address"] == "lee.gu@contoso.com"

    async def errors_are_odata_errors():
        try:
            await graph.users.by_user_id(upn("nobody.here")).get()
        except ODataError as e:
            assert e.response_status_code == 404, e.response_status_code
            assert e.error and e.error.code == "Request_ResourceNotFound", e.error
            return
        raise AssertionError("no ODataError")

    async def sign_in_activity_is_selectable():
        q = UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(
            select=["id", "userPrincipalName", "signInActivity"], top=999)
        users = (await graph.users.get(request_configuration=RequestConfiguration(query_parameters=q))).value
        by_upn = {u.user_principal_name: u for u in users}
        johanna = by_upn[upn("johanna.lorenz")].sign_in_activity
        assert johanna and johanna.last_successful_sign_in_date_time.isoformat().startswith("2026-06-02T08:14"), johanna
        # Never signed in: Graph's placeholder dates of year 1 (the SDK parses them; licensewatch reads them as none).
        raul = by_upn[upn("raul.razo")].sign_in_activity
        assert raul and raul.last_successful_sign_in_date_time is None, raul
        assert raul.last_sign_in_date_time.year == 1, raul

    async def mailbox_usage_report_follows_the_redirect():
        csv_bytes = await graph.reports.get_mailbox_usage_detail_with_period("D90").get()
        text = csv_bytes.decode("utf-8-sig")
        rows = list(csv.DictReader(io.StringIO(text)))
        assert "Last Activity Date" in rows[0], list(rows[0])
        johanna = [r for r in rows if r["User Principal Name"] == upn("johanna.lorenz")][0]
        assert johanna["Last Activity Date"] == "2026-06-02" and johanna["Report Period"] == "90", johanna

    async def throttling_is_waited_out_by_the_sdk():
        sim.control("/_sim/faults", {"route": "/v1.0/subscribedSkus", "kind": "throttle",
                                     "retry_after": "1", "count": 2})
        before = sum(1 for r in sim.control("/_sim/requests", method="GET") if "subscribedSkus" in str(r))
        skus = await graph.subscribed_skus.get()
        assert skus.value
        after = sum(1 for r in sim.control("/_sim/requests", method="GET") if "subscribedSkus" in str(r))
        assert after - before >= 3, (before, after)

    async def json_batch_through_the_sdk():
        from msgraph_core.requests.batch_request_content import BatchRequestContent
        from msgraph_core.requests.batch_request_item import BatchRequestItem
        items = [BatchRequestItem(request_information=graph.users.by_user_id(upn(n)).to_get_request_information())
                 for n in ("adele.vance", "nobody.here")]
        answer = await graph.batch.post(batch_request_content=BatchRequestContent({i.id: i for i in items}))
        codes = answer.get_response_status_codes()
        assert codes == {items[0].id: 200, items[1].id: 404}, codes
        # This msgraph-core release reads an item's `body` as base64 bytes, which Graph's JSON bodies are not (its
        # `response_body` fails on Graph's own answers): the statuses and headers are what it can check.
        item = answer.get_response_by_id(items[0].id)
        assert item.content_type.startswith("application/json"), item.content_type

    async def subscription_validated_renewed_notified_and_deleted():
        import queue
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import parse_qs
        from msgraph.generated.models.subscription import Subscription
        received = queue.Queue()

        class Endpoint(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                token = parse_qs(urlparse(self.path).query).get("validationToken")
                if token:
                    out = token[0].encode()
                    self.send_response(200)
                    self.send_header("content-type", "text/plain")
                    self.send_header("content-length", str(len(out)))
                    self.end_headers()
                    self.wfile.write(out)
                    return
                received.put(body)
                self.send_response(202)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Endpoint)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            url = f"http://127.0.0.1:{server.server_port}/graph/notifications"
            now = datetime.datetime.fromisoformat(sim.control("/_sim/state", method="GET")["now"].replace("Z", "+00:00"))
            sub = await graph.subscriptions.post(Subscription(
                change_type="updated,deleted", notification_url=url, lifecycle_notification_url=url,
                resource="/users", expiration_date_time=now + datetime.timedelta(days=2),
                client_state="conformance-client-state-0123456789"))
            assert sub.id and sub.client_state == "conformance-client-state-0123456789", sub
            renewed = await graph.subscriptions.by_subscription_id(sub.id).patch(
                Subscription(expiration_date_time=now + datetime.timedelta(days=3)))
            assert renewed.expiration_date_time > sub.expiration_date_time, renewed
            sim.control(f"/_sim/users/{upn('lee.gu')}/usage-location", {"usage_location": "DE"})
            # Graph delivers a change to users within 15 minutes (on the simulated tenant's clock).
            sim.control("/_sim/clock", {"advance_minutes": 15})
            # Graph's changeNotification (the Python SDK has no model for it): the documented fields.
            note = json.loads(received.get(timeout=10))["value"][0]
            assert note["subscriptionId"] == sub.id and note["changeType"] == "updated", note
            assert note["clientState"] == "conformance-client-state-0123456789", note
            assert note["resource"] == f"Users/{note['resourceData']['id']}", note
            assert note["resourceData"]["@odata.type"] == "#Microsoft.Graph.User", note
            assert note["tenantId"] == sim.tenant and note["subscriptionExpirationDateTime"], note
            await graph.subscriptions.by_subscription_id(sub.id).delete()
            assert not (await graph.subscriptions.get()).value
        finally:
            server.shutdown()

    return [(f.__name__, f) for f in [
        users_select_top_and_next_link, user_by_id_and_by_upn, subscribed_skus, groups_with_license_errors,
        members_with_license_errors, user_assign_license, group_assign_license, reprocess_license_assignment,
        directory_audits_filtered, send_mail, errors_are_odata_errors, sign_in_activity_is_selectable,
        mailbox_usage_report_follows_the_redirect, throttling_is_waited_out_by_the_sdk, json_batch_through_the_sdk,
        subscription_validated_renewed_notified_and_deleted]]


def main():
    exe = sys.argv[1] if len(sys.argv) > 1 else "target/debug/licensewatch"
    sim = Sim(exe)
    passed, failed = 0, 0

    def report(name, ok, detail=""):
        nonlocal passed, failed
        passed, failed = passed + ok, failed + (not ok)
        print(f"{'ok  ' if ok else 'FAIL'} {name}{(': ' + detail) if detail else ''}", flush=True)

    try:
        for name, credential in [("msal_client_secret", "any-secret"), ("msal_certificate", certificate_credential())]:
            result = msal_app(sim, credential).acquire_token_for_client(
                scopes=["https://graph.microsoft.com/.default"])
            report(name, "access_token" in result and result.get("token_type", "").lower() == "bearer",
                   "" if "access_token" in result else json.dumps(result)[:300])
        wrong = msal_app(sim, "any").acquire_token_for_client(scopes=["https://graph.microsoft.com/User.Read"])
        report("msal_rejects_a_scope_without_default", wrong.get("error") == "invalid_scope", json.dumps(wrong)[:200])

        graph = graph_client(sim, msal_app(sim, "any-secret"))

        async def run_all():
            for name, check in await checks(sim, graph):
                try:
                    await check()
                    report(name, True)
                except Exception as e:  # noqa: BLE001 - every failure is reported, none stops the suite
                    report(name, False, f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=3)}")

        asyncio.run(run_all())
    finally:
        sim.stop()
    print(f"conformance: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
