"""Members say in the preference centre what they can help with and what they would like help with;
mentor rounds pair an ask with a fitting offer from these."""

from __future__ import annotations

from cop_mail.connect.topics import topics_of
from tests.conftest import csrf_token_from
from tests.web.test_preferences import member, page_of  # noqa: F401 (fixture)

STREAMS = {f"stream_{s}": "on" for s in ("newsletters", "intros", "roundups", "resources")}


def test_offers_and_asks_are_saved_shown_and_kept_tidy(client, db, settings, member):  # noqa: F811
    path, page = page_of(client, settings, member)
    form = {
        "csrf_token": csrf_token_from(page),
        "action": "save",
        "intro_cadence_weeks": "4",
        **STREAMS,
        "offers": "Facilitating retrospectives\n\n  seed   saving \nfacilitating RETROSPECTIVES\n",
        "asks": "Writing grant applications",
    }
    client.post(path, data=form)
    db.expire_all()
    assert topics_of(db, member.id) == {
        "offer": ["Facilitating retrospectives", "seed saving"],
        "ask": ["Writing grant applications"],
    }
    shown = client.get(path).get_data(as_text=True)
    assert "Facilitating retrospectives\nseed saving</textarea>" in shown
    assert "Your preferences are saved." in shown

    form["csrf_token"] = csrf_token_from(shown)
    form["offers"], form["asks"] = "Facilitating retrospectives\nseed saving", ""
    client.post(path, data=form)
    db.expire_all()
    assert topics_of(db, member.id) == {"offer": ["Facilitating retrospectives", "seed saving"], "ask": []}
