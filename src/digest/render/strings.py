"""Interface strings per locale (English and Korean shipped); unknown locales fall back to English."""

from __future__ import annotations

CATALOGUE: dict[str, dict[str, str]] = {
    "en": {
        "greeting": "Hello {name}, here is your digest.",
        "greeting_anonymous": "Hello, here is your digest.",
        "sources": "Sources",
        "related": "Related coverage",
        "unsubscribe": "Unsubscribe",
        "preferences": "Preferences",
        "footer_reason": "You receive {list} because you subscribed to it.",
        "preheader": "{count} stories today: {lead}",
        "confirm_subject": "Please confirm your subscription to {list}",
        "confirm_heading": "Confirm your subscription",
        "confirm_body": "Someone (hopefully you) asked to receive {list}. Confirm with the button below.",
        "confirm_button": "Yes, subscribe me",
        "confirm_ignore": "If you did not ask for this, ignore this message: nothing will be sent.",
    },
    "ko": {
        "greeting": "{name}님, 오늘의 다이제스트입니다.",
        "greeting_anonymous": "안녕하세요, 오늘의 다이제스트입니다.",
        "sources": "출처",
        "related": "관련 보도",
        "unsubscribe": "수신 거부",
        "preferences": "구독 설정",
        "footer_reason": "{list}을(를) 구독하셨기 때문에 이 메일을 받으셨습니다.",
        "preheader": "오늘의 기사 {count}건: {lead}",
        "confirm_subject": "{list} 구독을 확인해 주세요",
        "confirm_heading": "구독 확인",
        "confirm_body": "{list} 구독 요청이 접수되었습니다. 아래 버튼을 눌러 확인해 주세요.",
        "confirm_button": "구독 확인하기",
        "confirm_ignore": "요청하지 않으셨다면 이 메일을 무시하세요. 아무것도 발송되지 않습니다.",
    },
}


def strings_for(locale: str) -> dict[str, str]:
    language = (locale or "en").split("-")[0].split("_")[0].lower()
    return {**CATALOGUE["en"], **CATALOGUE.get(language, {})}
