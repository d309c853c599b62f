"""Member-facing pages at the root: signup, confirm, preferences, manage by email, unsubscribe.

Signed links are the only key (no passwords). A forged, tampered or expired link gets
a plain page (400 or 410) offering a fresh link by email, never a traceback.

CSRF: the signup form is meant to be pasted into other sites, and the JSON endpoint is
called from them, so both are exempt (a honeypot and a per-IP rate limit guard them).
The unsubscribe URL is exempt only for the exact RFC 8058 one-click body
`List-Unsubscribe=One-Click`; the button on its page carries a CSRF token like every
other form here.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, flash, jsonify, redirect, render_template, request, url_for
from sqlalchemy import select

from cop_mail import ratelimit
from cop_mail.audience import links, preferences, subscriptions
from cop_mail.audience.links import ALL_STREAMS, LinkError
from cop_mail.models import MailingList, Member, MemberStatus, OptIn, Practice, Value
from cop_mail.sending.transactional import enqueue_transactional
from cop_mail.web.auth import client_ip
from cop_mail.web.extensions import csrf, db, redis, settings

bp = Blueprint("members_public", __name__)

HONEYPOT = "website"
STREAM_LABELS = {
    "newsletters": "newsletters",
    "intros": "introductions to other members",
    "roundups": "story roundups and story prompts",
    "resources": "resource digests",
    ALL_STREAMS: "all our emails",
}


def _limit(name: str, default: int) -> int:
    return int(settings().extra.get(name, default))


def _rate_limited(kind: str, per_hour: int) -> bool:
    return not ratelimit.hit(redis(), f"{kind}-ip:{client_ip()}", per_hour, 3600)


def _link_error(error: LinkError) -> tuple[str, int]:
    code = 410 if error.expired else 400
    return render_template("public/manage_link_error.html", expired=error.expired), code


def _gone() -> tuple[str, int]:
    return render_template("public/manage_link_error.html", expired=False, gone=True), 410


def _ids(raw: Any) -> tuple[int, ...]:
    if not isinstance(raw, list):
        return ()
    ids = []
    for item in raw[:200]:
        try:
            ids.append(int(item))
        except (TypeError, ValueError):
            continue
    return tuple(ids)


# --- signup ------------------------------------------------------------------------------


def _public_list(slug: str) -> MailingList:
    found = subscriptions.find_public_list(db(), slug)
    if found is None:
        abort(404, "There is no signup form at this address.")
    return found


def _signup_page(mailing_list: MailingList, error: str | None = None, form: Any = None, status: int = 200) -> Any:
    return render_template(
        "public/signup.html",
        mailing_list=mailing_list,
        wording=subscriptions.form_wording(mailing_list),
        values=db().scalars(select(Value).order_by(Value.position, Value.name)).all(),
        practices=db().scalars(select(Practice).order_by(Practice.name)).all(),
        error=error,
        form=form or {"values": [], "practices": []},
        honeypot=HONEYPOT,
    ), status


def _handle_signup(mailing_list: MailingList, data: dict[str, Any], source: str) -> subscriptions.SignupResult | None:
    """Shared by the form and the JSON endpoint; None for a bot (the honeypot was filled in)."""
    if str(data.get(HONEYPOT) or "").strip():
        return None
    request_ = subscriptions.SignupRequest(
        email=str(data.get("email") or ""),
        name=str(data.get("name") or ""),
        value_ids=_ids(data.get("values") or []),
        practice_ids=_ids(data.get("practices") or []),
        ip=client_ip(),
        source=source,
    )
    result = subscriptions.sign_up_and_commit(db(), mailing_list.id, request_)
    if result.delivery_id is not None:
        enqueue_transactional(redis(), result.delivery_id)
    return result


@bp.route("/signup/<slug>", methods=["GET", "POST"])
@csrf.exempt
def signup(slug: str) -> Any:
    mailing_list = _public_list(slug)
    if request.method == "GET":
        return _signup_page(mailing_list)
    if _rate_limited("signup", _limit("signup_per_ip_per_hour", 10)):
        abort(429)
    form = {
        "email": request.form.get("email", ""),
        "name": request.form.get("name", ""),
        "values": request.form.getlist("values"),
        "practices": request.form.getlist("practices"),
        HONEYPOT: request.form.get(HONEYPOT, ""),
    }
    try:
        _handle_signup(mailing_list, form, "form")
    except subscriptions.SubscriptionError as exc:
        return _signup_page(mailing_list, str(exc), form, 400)
    return redirect(url_for("members_public.signup_thanks", slug=slug))


@bp.route("/signup/<slug>/thanks")
def signup_thanks(slug: str) -> Any:
    mailing_list = _public_list(slug)
    return render_template(
        "public/signup_thanks.html", mailing_list=mailing_list, double=mailing_list.opt_in == OptIn.DOUBLE
    )


@bp.route("/signup/<slug>/embed")
def signup_embed(slug: str) -> Any:
    """The form as an HTML fragment to paste into another site (it posts back here)."""
    mailing_list = _public_list(slug)
    fragment = render_template(
        "public/signup_embed.html",
        mailing_list=mailing_list,
        wording=subscriptions.form_wording(mailing_list),
        action=f"{settings().public_url}{url_for('members_public.signup', slug=slug)}",
        honeypot=HONEYPOT,
    )
    if request.args.get("format") == "code":
        return render_template("public/signup_embed_code.html", mailing_list=mailing_list, fragment=fragment)
    response = Response(fragment, mimetype="text/html")
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


@bp.route("/api/signup/<slug>", methods=["POST", "OPTIONS"])
@csrf.exempt
def api_signup(slug: str) -> Any:
    """JSON signup for other sites: {"email", "name", "values": [ids], "practices": [ids]}."""
    if request.method == "OPTIONS":
        return _cors(Response(status=204))
    mailing_list = _public_list(slug)
    if _rate_limited("signup", _limit("signup_per_ip_per_hour", 10)):
        abort(429)
    data = request.get_json(silent=True) if request.is_json else request.form.to_dict(flat=False)
    if not isinstance(data, dict):
        abort(400, "Send a JSON object with at least an email address.")
    if not request.is_json:
        data = {key: (value if key in ("values", "practices") else value[0]) for key, value in data.items()}
    try:
        _handle_signup(mailing_list, data, "api")
    except subscriptions.SubscriptionError as exc:
        return _cors(jsonify({"error": {"code": 400, "message": str(exc)}})), 400
    double = mailing_list.opt_in == OptIn.DOUBLE
    message = (
        "Thank you. Please check your inbox and press the button in our email to confirm."
        if double
        else "Thank you for joining. Watch your inbox: if we need you to confirm, an email is on its way."
    )
    return _cors(jsonify({"ok": True, "confirmation_required": double, "message": message}))


def _cors(response: Response) -> Response:
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
    response.headers["Access-Control-Allow-Headers"] = "Content-Type"
    return response


# --- confirm -----------------------------------------------------------------------------


@bp.route("/confirm/<token>", methods=["GET", "POST"])
def confirm(token: str) -> Any:
    try:
        link = links.read_confirm_token(settings(), token)
    except LinkError as error:
        return _link_error(error)
    mailing_list = db().get(MailingList, link.list_id)
    if request.method == "GET":
        # Link scanners follow GETs: the page only shows a button.
        return render_template("public/confirm.html", mailing_list=mailing_list)
    outcome = subscriptions.confirm_subscription(db(), link, ip=client_ip())
    db().commit()
    if outcome is subscriptions.ConfirmOutcome.INVALID:
        return _link_error(LinkError("invalid"))
    status = (
        200
        if outcome in (subscriptions.ConfirmOutcome.CONFIRMED, subscriptions.ConfirmOutcome.ALREADY_CONFIRMED)
        else 410
    )
    return render_template(
        "public/confirm_done.html",
        outcome=str(outcome),
        mailing_list=mailing_list,
        preferences_url=links.preferences_url(settings(), link.member_id),
    ), status


# --- preference centre -------------------------------------------------------------------


def _member_from_preferences_token(token: str) -> Member | tuple[str, int]:
    try:
        member_id = links.read_preferences_token(settings(), token)
    except LinkError as error:
        return _link_error(error)
    member = db().get(Member, member_id)
    if member is None:
        return _link_error(LinkError("invalid"))
    if member.status == MemberStatus.ERASED:
        return _gone()
    return member


@bp.route("/preferences/<token>", methods=["GET", "POST"])
def preferences_page(token: str) -> Any:
    member = _member_from_preferences_token(token)
    if not isinstance(member, Member):
        return member
    if request.method == "POST":
        message = _apply_preferences_action(member, request.form.get("action", "save"))
        db().commit()
        flash(message, "info")
        return redirect(url_for("members_public.preferences_page", token=token))
    return render_template(
        "public/preferences.html",
        member=member,
        current=preferences.current_preferences(db(), member),
        choices=preferences.preference_choices(db(), member),
        cadences=preferences.CADENCE_CHOICES,
        stream_labels=STREAM_LABELS,
        unsubscribe_all_url=links.unsubscribe_all_url(settings(), member.id),
    )


def _apply_preferences_action(member: Member, action: str) -> str:
    ip = client_ip()
    try:
        if action == "pause":
            until = preferences.pause(db(), member, request.form.get("weeks", 0, type=int) or 0, ip=ip)
            return f"No mail until {until:%d %B %Y}. You can resume any time here."
        if action == "resume":
            preferences.resume(db(), member, ip=ip)
            return "Welcome back: your emails resume now."
        if action == "resubscribe":
            subscriptions.resubscribe(db(), member.id, ip=ip)
            return "You are subscribed again."
        if action == "unsubscribe_all":
            subscriptions.unsubscribe_all(db(), member.id, ip=ip, source="preferences")
            return "You are unsubscribed from everything. We will not email you again."
        changed = preferences.update_preferences(db(), member, _wanted_preferences(), ip=ip)
    except preferences.PreferenceError as exc:
        return str(exc)
    return "Your preferences are saved." if changed else "Nothing changed."


def _wanted_preferences() -> preferences.Preferences:
    form = request.form
    cadence_raw = form.get("intro_cadence_weeks", "none")
    # Anything but "none" or a number is refused by the cadence check, never read as "none".
    cadence = None if cadence_raw == "none" else int(cadence_raw) if cadence_raw.isdecimal() else -1
    return preferences.Preferences(
        streams={stream: form.get(f"stream_{stream}") == "on" for stream in links.UNSUBSCRIBABLE},
        intro_cadence_weeks=cadence,
        value_ids=frozenset(_ids(form.getlist("values"))),
        practice_ids=frozenset(_ids(form.getlist("practices"))),
        list_ids=frozenset(_ids(form.getlist("lists"))),
        offers=_lines(form["offers"]) if "offers" in form else None,
        asks=_lines(form["asks"]) if "asks" in form else None,
    )


def _lines(text: str) -> tuple[str, ...]:
    return tuple(line for line in text.splitlines() if line.strip())


# --- manage by email ---------------------------------------------------------------------


@bp.route("/manage", methods=["GET", "POST"])
def manage() -> Any:
    if request.method == "GET":
        return render_template("public/manage.html")
    if _rate_limited("manage", _limit("manage_per_ip_per_hour", 10)):
        abort(429)
    email = request.form.get("email", "").strip()
    if not email or len(email) > 320 or "@" not in email:
        return render_template("public/manage.html", error="Please enter the email address we write to."), 400
    delivery_id = preferences.request_manage_link(db(), email, ip=client_ip())
    db().commit()
    if delivery_id is not None:
        enqueue_transactional(redis(), delivery_id)
    # The same answer whether or not the address is known: the form reveals nobody.
    return render_template("public/manage_sent.html")


# --- unsubscribe -------------------------------------------------------------------------


def _is_one_click() -> bool:
    return request.method == "POST" and request.form.get("List-Unsubscribe") == "One-Click"


@bp.route("/unsubscribe/<token>", methods=["GET", "POST"])
@csrf.exempt
def unsubscribe(token: str) -> Any:
    return _unsubscribe(token, everything=False)


@bp.route("/unsubscribe/<token>/all", methods=["GET", "POST"])
@csrf.exempt
def unsubscribe_all(token: str) -> Any:
    return _unsubscribe(token, everything=True)


def _unsubscribe(token: str, everything: bool) -> Any:
    one_click = _is_one_click()
    if request.method == "POST" and not one_click:
        csrf.protect()
    try:
        link = links.read_unsubscribe_token(settings(), token)
    except LinkError as error:
        if one_click:
            return _plain("This unsubscribe link is not valid.", 410 if error.expired else 400)
        return _link_error(error)
    stream = ALL_STREAMS if everything else link.stream
    member = db().get(Member, link.member_id)
    if member is None:
        return _plain("This unsubscribe link is not valid.", 400) if one_click else _link_error(LinkError("invalid"))
    if request.method == "GET":
        return _unsubscribe_page(member, link, stream, token)
    if member.status != MemberStatus.ERASED:
        source = "one-click" if one_click else "link"
        subscriptions.unsubscribe_stream(
            db(), member.id, stream, ip=client_ip(), source=source, campaign_id=link.campaign_id
        )
        db().commit()
    label = STREAM_LABELS[stream]
    if one_click:
        # RFC 8058: a 200 with no redirect, and nothing that needs a cookie.
        return _plain(f"You are unsubscribed from {label}.", 200)
    return render_template(
        "public/unsubscribe_done.html",
        label=label,
        everything=stream == ALL_STREAMS,
        preferences_url=links.preferences_url(settings(), member.id),
    )


def _unsubscribe_page(member: Member, link: links.UnsubscribeLink, stream: str, token: str) -> Any:
    return render_template(
        "public/unsubscribe.html",
        label=STREAM_LABELS[stream],
        everything=stream == ALL_STREAMS,
        gone=member.status == MemberStatus.ERASED,
        already=member.status in (MemberStatus.UNSUBSCRIBED, *subscriptions.REFUSED_STATUSES),
        all_url=url_for("members_public.unsubscribe_all", token=token),
        preferences_url=links.preferences_url(settings(), member.id),
    )


def _plain(text: str, status: int) -> Response:
    return Response(text + "\n", status=status, mimetype="text/plain")
