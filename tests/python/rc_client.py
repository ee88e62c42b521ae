"""Drive a running tokend with a real Rocket.Chat client: `rocketchat-api` from PyPI.

Run by scripts/rc-client-test, which installs the pinned client, starts tokend
and passes the connection details in the environment:

  TOKEND_URL           base URL, e.g. http://127.0.0.1:40123
  TOKEND_ADMIN_USER    seeded admin (ADMIN_USERNAME)
  TOKEND_ADMIN_PASS    its password (ADMIN_PASS)
  TOKEND_TOKEN_SECRET  CREATE_TOKENS_FOR_USERS_SECRET tokend was started with

Each step uses the client's own methods where it has them (login on
construction, users_create, users_create_token, me, logout, ...) and its
generic call_api_get/call_api_post for the personal-access-token routes it
does not wrap. Prints one line per step and a closing "N passed, N failed".
"""

import hashlib
import os
import sys
import time
import traceback

from rocketchat_API.APIExceptions.RocketExceptions import RocketApiException
from rocketchat_API.rocketchat import RocketChat

URL = os.environ["TOKEND_URL"]
ADMIN_USER = os.environ["TOKEND_ADMIN_USER"]
ADMIN_PASS = os.environ["TOKEND_ADMIN_PASS"]
SECRET = os.environ["TOKEND_TOKEN_SECRET"]

USERNAME = f"rc-client-{int(time.time())}"
PASSWORD = "client-pass-123"

state = {}


def expect_api_error(call, status, error_type=None):
    """Run `call`, which must fail with this HTTP status (and errorType)."""
    try:
        call()
    except RocketApiException as exc:
        assert exc.status_code == status, f"status {exc.status_code}, wanted {status}: {exc.response}"
        if error_type is not None:
            assert exc.error_type == error_type, f"errorType {exc.error_type!r}, wanted {error_type!r}"
        return exc
    raise AssertionError(f"expected HTTP {status}, the call succeeded")


def login_as_admin():
    # The constructor logs in: POST /api/v1/login {username, password}.
    admin = RocketChat(ADMIN_USER, ADMIN_PASS, server_url=URL, timeout=10)
    assert admin.headers.get("X-Auth-Token"), "no token after login"
    state["admin"] = admin


def server_info():
    info = state["admin"].info()
    assert info["success"] is True and info["version"], info


def admin_me():
    me = state["admin"].me()
    assert me["success"] is True and me["username"] == ADMIN_USER, me
    assert "admin" in me["roles"], me


def create_user():
    resp = state["admin"].users_create(
        email=f"{USERNAME}@example.org",
        name="RC Client",
        password=PASSWORD,
        username=USERNAME,
        verified=True,
        joinDefaultChannels=False,
    )
    assert resp["success"] is True, resp
    user = resp["user"]
    assert user["username"] == USERNAME and user["active"] is True, user
    assert "services" not in user, user
    state["user_id"] = user["_id"]


def user_info_and_list():
    info = state["admin"].users_info(username=USERNAME)
    assert info["user"]["_id"] == state["user_id"], info
    names = [u["username"] for u in state["admin"].users_list()]
    assert USERNAME in names and ADMIN_USER in names, names


class password_2fa:
    """Rocket.Chat's password fallback of protected actions: `X-2FA-Method:
    password` with the SHA-256 hex of the password as `X-2FA-Code`."""

    def __init__(self, client, password):
        self.client, self.password = client, password

    def __enter__(self):
        self.client.headers["X-2FA-Method"] = "password"
        self.client.headers["X-2FA-Code"] = hashlib.sha256(self.password.encode()).hexdigest()

    def __exit__(self, *exc):
        self.client.headers.pop("X-2FA-Method", None)
        self.client.headers.pop("X-2FA-Code", None)


def create_token_in_secret_mode():
    # A protected action: without a second factor, the password confirms it.
    expect_api_error(
        lambda: state["admin"].users_create_token(state["user_id"], SECRET),
        400,
        "totp-required",
    )
    with password_2fa(state["admin"], ADMIN_PASS):
        resp = state["admin"].users_create_token(state["user_id"], SECRET)
    assert resp["success"] is True, resp
    data = resp["data"]
    assert data["userId"] == state["user_id"] and len(data["authToken"]) == 43, resp
    state["user_token"] = data["authToken"]


def wrong_secret_is_refused():
    with password_2fa(state["admin"], ADMIN_PASS):
        expect_api_error(
            lambda: state["admin"].users_create_token(state["user_id"], SECRET + "x"),
            400,
            "error-not-authorized",
        )


def me_with_the_new_token():
    user = RocketChat(user_id=state["user_id"], auth_token=state["user_token"], server_url=URL, timeout=10)
    me = user.me()
    assert me["success"] is True and me["_id"] == state["user_id"] and me["username"] == USERNAME, me
    state["user"] = user


def personal_access_token():
    with password_2fa(state["user"], PASSWORD):
        resp = state["user"].call_api_post("users.generatePersonalAccessToken", tokenName="rc-client")
    assert resp["success"] is True, resp
    pat = RocketChat(user_id=state["user_id"], auth_token=resp["token"], server_url=URL, timeout=10)
    assert pat.me()["_id"] == state["user_id"]
    listed = state["user"].call_api_get("users.getPersonalAccessTokens")
    assert [t["name"] for t in listed["tokens"]] == ["rc-client"], listed
    assert listed["tokens"][0]["lastTokenPart"] == resp["token"][-6:], listed
    state["pat"] = pat


def update_user():
    resp = state["admin"].users_update(state["user_id"], name="Renamed Client")
    assert resp["user"]["name"] == "Renamed Client", resp


def deactivation_ends_tokens():
    resp = state["admin"].users_set_active_status(state["user_id"], False)
    assert resp["user"] == {"_id": state["user_id"], "active": False}, resp
    expect_api_error(state["user"].me, 401)
    expect_api_error(state["pat"].me, 401)


def delete_user():
    resp = state["admin"].users_delete(state["user_id"])
    assert resp["success"] is True, resp
    # Rocket.Chat's users.info answers an unknown user without an errorType.
    exc = expect_api_error(lambda: state["admin"].users_info(user_id=state["user_id"]), 400)
    assert exc.error_type is None and "User not found." in str(exc), exc


def logout():
    resp = state["admin"].logout()
    assert resp["status"] == "success", resp
    expect_api_error(state["admin"].me, 401)


STEPS = [
    login_as_admin,
    server_info,
    admin_me,
    create_user,
    user_info_and_list,
    create_token_in_secret_mode,
    wrong_secret_is_refused,
    me_with_the_new_token,
    personal_access_token,
    update_user,
    deactivation_ends_tokens,
    delete_user,
    logout,
]


def main():
    passed = failed = 0
    for step in STEPS:
        try:
            step()
        except Exception:  # noqa: BLE001 - report any failure of the step
            failed += 1
            print(f"not ok - {step.__name__}")
            traceback.print_exc()
            break  # later steps build on this one
        passed += 1
        print(f"ok - {step.__name__}")
    skipped = len(STEPS) - passed - failed
    print(f"rc-client: {passed} passed, {failed} failed, {skipped} skipped")
    return 0 if failed == 0 and skipped == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
