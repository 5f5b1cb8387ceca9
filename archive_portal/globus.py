"""Globus login: django-allauth's Globus provider, extended for the portal.

- Login asks for ``openid profile email`` and the Transfer scope with offline
  access (plus the Groups scope when a Globus group guards the portal).
- The token response's ``other_tokens`` (the Transfer token, which the stock
  provider drops) go into the vault once the login succeeds, and
  ``archive_portal.signals.globus_tokens_updated`` is sent.
- The Globus Auth base URL follows ``GLOBUS_SDK_SERVICE_URL_AUTH`` at request
  time, so the whole login runs against a loopback fake.
- The provider app comes from ``SOCIALACCOUNT_PROVIDERS["globus"]["APPS"]``
  (built from ``GLOBUS_CLIENT_ID`` / ``GLOBUS_CLIENT_SECRET``); no database
  SocialApp is needed.
- The allow-list (``archive_portal.access``) is applied before an account is
  created or logged in; a refused identity sees ``portal/not_allowed.html``.

The provider keeps the id ``globus``, so allauth's URL names
(``globus_login``, ``globus_callback``) stay; ``archive_portal.urls`` routes
those two paths to the views below.
"""

import logging
import time

import globus_sdk.config
from allauth.account.adapter import DefaultAccountAdapter
from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.adapter import get_adapter as get_social_adapter
from allauth.socialaccount.providers.base import ProviderException
from allauth.socialaccount.providers.globus.provider import GlobusProvider
from allauth.socialaccount.providers.globus.views import GlobusOAuth2Adapter
from allauth.socialaccount.providers.oauth2.views import OAuth2CallbackView, OAuth2LoginView
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.debug import sensitive_variables

from archive_portal import access, signals, vault
from transfers import clients

logger = logging.getLogger(__name__)

OIDC_SCOPES = ("openid", "profile", "email")
# Scope strings a "log in again" link may ask for: Globus scopes only.
_SCOPE_PREFIXES = ("urn:globus:auth:scope:", "https://auth.globus.org/scopes/")


def auth_base_url():
    """Globus Auth's base URL, honouring ``GLOBUS_SDK_SERVICE_URL_AUTH`` now."""
    return globus_sdk.config.get_service_url("auth").rstrip("/")


def is_globus_scope(scope):
    return scope.startswith(_SCOPE_PREFIXES) and not any(c in scope for c in "\r\n\t,")


def base_scopes():
    """What every Globus login asks for besides the Transfer scope."""
    scopes = list(OIDC_SCOPES)
    if access.needs_groups_scope():
        scopes.append(access.GROUPS_SCOPE)
    return scopes


@sensitive_variables()
def tokens_by_resource_server(token_response):
    """The token response's tokens keyed by resource server, in the shape the
    vault stores (``other_tokens`` included; ``id_token`` and ``state`` not)."""
    now = int(time.time())
    documents = [token_response, *(token_response.get("other_tokens") or [])]
    tokens = {}
    for document in documents:
        resource_server = document.get("resource_server")
        if not resource_server or not document.get("access_token"):
            continue
        expires_in = document.get("expires_in")
        tokens[resource_server] = {
            "resource_server": resource_server,
            "access_token": document["access_token"],
            "refresh_token": document.get("refresh_token") or "",
            "expires_at_seconds": now + int(expires_in) if expires_in is not None else None,
            "scope": document.get("scope", ""),
        }
    return tokens


class PortalGlobusOAuth2Adapter(GlobusOAuth2Adapter):
    # Globus documents client_secret_basic for confidential clients.
    basic_auth = True

    @property
    def provider_base_url(self):
        return f"{auth_base_url()}/v2/oauth2"

    @property
    def access_token_url(self):
        return f"{self.provider_base_url}/token"

    @property
    def authorize_url(self):
        return f"{self.provider_base_url}/authorize"

    @property
    def profile_url(self):
        return f"{self.provider_base_url}/userinfo"

    @sensitive_variables()
    def complete_login(self, request, app, token, response=None, **kwargs):
        # The token goes in the header only: a query string ends up in access logs.
        with get_social_adapter().get_requests_session() as session:
            resp = session.get(self.profile_url, headers={"Authorization": f"Bearer {token.token}"})
        if resp.status_code != 200:
            raise ProviderException(f"Globus Auth userinfo answered {resp.status_code}")
        userinfo = resp.json()
        login = self.get_provider().sociallogin_from_response(request, userinfo)
        # Kept on the object only (never serialized into the session); saved
        # to the vault in AccountAdapter.post_login once the login succeeds.
        login.globus_tokens = tokens_by_resource_server(response or {})
        return login


class PortalGlobusProvider(GlobusProvider):
    """Globus with the Transfer scope, offline access and loopback-able URLs."""

    oauth2_adapter_class = PortalGlobusOAuth2Adapter
    # allauth builds the globus_login / globus_callback URL names from the
    # stock package; archive_portal.urls sends those paths to our views.
    package = "allauth.socialaccount.providers.globus"

    def get_default_scope(self):
        return [*base_scopes(), clients.TRANSFER_SCOPE]

    def get_auth_params(self):
        return {"access_type": "offline", **super().get_auth_params()}

    def get_scope_from_request(self, request):
        """The default scopes, or, when the login was started for missing
        scopes (``?scope=a,b``), the base scopes plus exactly those."""
        requested = [s.strip() for s in request.GET.get("scope", "").split(",") if s.strip()]
        requested = [s for s in requested if is_globus_scope(s)]
        if not requested:
            return self.get_scope()
        return [*base_scopes(), *requested]

    def extract_common_fields(self, data):
        fields = super().extract_common_fields(data)
        name = data.get("name") or ""
        first, _, last = name.partition(" ")
        fields.update(first_name=first[:150], last_name=last[:150])
        return fields


def login_url(*, scopes=(), next_url=None):
    """The URL that starts a Globus login (POST to it) for ``scopes``."""
    params = {"process": "login"}
    if scopes:
        params["scope"] = ",".join(s for s in scopes if is_globus_scope(s))
    if next_url:
        params["next"] = next_url
    return f"{reverse('globus_login')}?{urlencode(params)}"


_oauth2_login = OAuth2LoginView.adapter_view(PortalGlobusOAuth2Adapter)
_oauth2_callback = OAuth2CallbackView.adapter_view(PortalGlobusOAuth2Adapter)


def _globus_login_off(request):
    # Without a Globus client allauth has no provider app and would fail with a server error.
    messages.error(request, "Globus login is not set up on this portal; log in with your username and password.")
    return redirect("account_login")


@login_not_required
def oauth2_login(request, *args, **kwargs):
    if not clients.client_configured():
        return _globus_login_off(request)
    return _oauth2_login(request, *args, **kwargs)


@login_not_required
@sensitive_variables()
def oauth2_callback(request, *args, **kwargs):
    if not clients.client_configured():
        return _globus_login_off(request)
    # allauth logs the current user out before logging the Globus user in;
    # that logout must not revoke the tokens this login is about to replace.
    request.portal_globus_callback = True
    return _oauth2_callback(request, *args, **kwargs)


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    """Applies the allow-list to Globus logins."""

    @sensitive_variables()
    def pre_social_login(self, request, sociallogin):
        if sociallogin.account.provider != PortalGlobusProvider.id:
            return
        identity_username = sociallogin.account.extra_data.get("preferred_username") or ""
        tokens = getattr(sociallogin, "globus_tokens", {})
        decision = access.check_identity(identity_username, tokens)
        if decision.allowed:
            return
        logger.info("Globus identity %s refused by the allow-list", identity_username)
        clients.revoke_tokens(tokens.values())
        response = render(
            request,
            "portal/not_allowed.html",
            {
                "identity_username": identity_username,
                "reason": decision.reason,
                "open_to": access.describe_allow_list(),
            },
            status=403,
        )
        raise ImmediateHttpResponse(response)

    def is_open_for_signup(self, request, sociallogin):
        # Globus identities that passed pre_social_login may always sign up;
        # local signup is governed by AccountAdapter.
        return sociallogin.account.provider == PortalGlobusProvider.id


class AccountAdapter(DefaultAccountAdapter):
    """Local accounts are made by admins; Globus logins fill the vault."""

    def is_open_for_signup(self, request):
        return settings.PORTAL_LOCAL_SIGNUP and not clients.client_configured()

    @sensitive_variables()
    def post_login(self, request, user, *, signal_kwargs=None, **kwargs):
        sociallogin = (signal_kwargs or {}).get("sociallogin")
        tokens = getattr(sociallogin, "globus_tokens", None)
        if tokens:
            vault.save_tokens(user, tokens)
            signals.globus_tokens_updated.send(
                sender=type(user),
                user=user,
                resource_servers=sorted(tokens),
                request=request,
            )
        return super().post_login(request, user, signal_kwargs=signal_kwargs, **kwargs)
