#!/usr/bin/env python3
"""LabelFleet helpers that run inside a Label Studio container (started by entrypoint.sh).

Subcommands:
  report            wait for /health/, verify the API token, ensure the annotator account,
                    then POST the working token to the fleet (retrying until a 2xx).
  health            exit 0 if /health/ answers 200 (used by the image HEALTHCHECK).
  admin-token       (Django) print `TOKEN=<key>` for LABEL_STUDIO_USERNAME's real token and make
                    sure legacy `Authorization: Token` auth is enabled for the organization.
  ensure-annotator  (Django) create or update the non-superuser account ANNOTATOR_EMAIL with
                    ANNOTATOR_PASSWORD in the instance's organization.

Only the standard library is used outside the Django subcommands, and the Django ones run as
separate short-lived processes so the long-running reporter stays small.
Secrets (webhook secret, passwords, tokens) are never printed; tokens are shown masked.
"""
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

PORT = int(os.environ.get('LS_PORT', '8080'))
# The instance is always checked on loopback: with host networking that is this instance's
# own port, and inside a bridge network it is the container's own loopback.
LOCAL = f'http://127.0.0.1:{PORT}'


def log(msg):
    print(f'[labelfleet] {msg}', flush=True)


def mask(token):
    return (token[:4] + '…') if token else '<none>'


def http(method, url, headers=None, body=None, timeout=10):
    """Return (status, text); status 0 means the request did not complete."""
    data = None
    hdrs = dict(headers or {})
    if body is not None:
        data = json.dumps(body).encode()
        hdrs['Content-Type'] = 'application/json'
    req = urllib.request.Request(url, data=data, headers=hdrs, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode(errors='replace')
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors='replace')
    except Exception as e:  # connection refused, timeout, DNS, ...
        return 0, f'{type(e).__name__}: {e}'


def healthy():
    status, _ = http('GET', f'{LOCAL}/health/', timeout=5)
    return status == 200


def token_works(token):
    if not token:
        return False
    status, _ = http('GET', f'{LOCAL}/api/projects/?page_size=1', {'Authorization': f'Token {token}'})
    return status == 200


def run_django(cmd):
    """Run a Django subcommand of this file in a child process; return (rc, stdout)."""
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), cmd], stdout=subprocess.PIPE, text=True, timeout=600
    )
    return proc.returncode, proc.stdout


def working_token():
    """Block until some token answers 200 on /api/projects/ and return it."""
    given = os.environ.get('LABEL_STUDIO_USER_TOKEN', '')
    attempt = 0
    while True:
        attempt += 1
        if token_works(given):
            return given
        # Retry the given token a few times before asking the database: right after /health/
        # answers, the first request can still race with start-up.
        if attempt >= 3:
            rc, out = run_django('admin-token')
            real = next((l[6:].strip() for l in out.splitlines() if l.startswith('TOKEN=')), '')
            if rc == 0 and real and token_works(real):
                if real != given:
                    log(f'given token {mask(given)} is not the instance token; reporting stored token {mask(real)}')
                return real
            log(f'token verification failed (attempt {attempt}, admin-token rc={rc}); retrying')
        time.sleep(min(2 * attempt, 15))


# How often the reporter asks /health/ while Label Studio boots: a refused connect costs next to
# nothing, and the token report (so the start's end) follows /health/ by at most this much.
HEALTH_POLL_SECONDS = 0.1


def report():
    while not healthy():
        time.sleep(HEALTH_POLL_SECONDS)
    log('/health/ answers 200')
    token = working_token()
    log(f'API token {mask(token)} answers 200 on /api/projects/')

    if os.environ.get('ANNOTATOR_EMAIL') and os.environ.get('ANNOTATOR_PASSWORD'):
        for attempt in range(1, 4):
            rc, out = run_django('ensure-annotator')
            if rc == 0:
                log(out.strip().splitlines()[-1] if out.strip() else 'annotator account ensured')
                break
            log(f'ensure-annotator failed (rc={rc}, attempt {attempt}/3)')
            time.sleep(3 * attempt)

    callback = os.environ.get('FLEET_CALLBACK_URL', '').rstrip('/')
    annotator_id = os.environ.get('ANNOTATOR_ID', '')
    if not callback or not annotator_id:
        log('FLEET_CALLBACK_URL or ANNOTATOR_ID not set: token not reported')
        return
    url = f'{callback}/api/annotators/{annotator_id}/token'
    headers = {'X-Webhook-Secret': os.environ.get('WEBHOOK_SECRET', '')}
    delay, attempt = 1, 0
    while True:
        attempt += 1
        status, text = http('POST', url, headers, {'token': token})
        if 200 <= status < 300:
            log(f'token reported to {url} (HTTP {status}, attempt {attempt})')
            return
        log(f'token report to {url} failed (attempt {attempt}): HTTP {status} {text[:200]!r}; retry in {delay}s')
        time.sleep(delay)
        delay = min(delay * 2, 30)  # never give up; the fleet may be down for a while


# ---------------------------------------------------------------- Django-side subcommands


def django_setup():
    # Same set-up as label_studio.server._setup_env: LS modules import each other top-level.
    import pathlib

    import label_studio

    sys.path.insert(0, str(pathlib.Path(label_studio.__file__).parent))
    os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'label_studio.core.settings.label_studio')
    import django

    django.setup()


def admin_token():
    django_setup()
    from rest_framework.authtoken.models import Token
    from users.models import User

    user = User.objects.get(email=os.environ['LABEL_STUDIO_USERNAME'])
    org = user.active_organization
    # Organizations created without LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN reject `Token` auth;
    # turning it on here is what `POST /api/jwt/settings` would do.
    if org is not None and hasattr(org, 'jwt') and not org.jwt.legacy_api_tokens_enabled:
        org.jwt.api_tokens_enabled = True
        org.jwt.legacy_api_tokens_enabled = True
        org.jwt.save()
    token, _ = Token.objects.get_or_create(user=user)
    print(f'TOKEN={token.key}', flush=True)


def ensure_annotator():
    django_setup()
    from organizations.models import Organization
    from users.models import User

    email = os.environ['ANNOTATOR_EMAIL'].strip()
    password = os.environ['ANNOTATOR_PASSWORD']
    org = Organization.objects.order_by('id').first()
    user = User.objects.filter(email__iexact=email).first()
    if user is None:
        user = User.objects.create_user(email=email, password=password)  # is_staff/superuser False
        action = 'created'
    elif not user.check_password(password):
        user.set_password(password)
        user.save(update_fields=['password'])
        action = 'password updated'
    else:
        action = 'unchanged'
    if org is not None:
        org.add_user(user)  # no-op when already a member
        if user.active_organization_id != org.id:
            user.active_organization = org
            user.save(update_fields=['active_organization'])
    print(f'annotator account {email}: {action}', flush=True)


def health():
    sys.exit(0 if healthy() else 1)


if __name__ == '__main__':
    commands = {
        'report': report,
        'health': health,
        'admin-token': admin_token,
        'ensure-annotator': ensure_annotator,
    }
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        sys.exit(f'usage: {sys.argv[0]} {{{"|".join(commands)}}}')
    commands[sys.argv[1]]()
