"""Deterministic sample editions for golden files, benchmarks, previews and docs (no database)."""

from __future__ import annotations

from digest.render.digest_email import ListView, SourceLink, StoryView

_EN = [
    ("Shipyard workers win a four-day week after a month-long strike", "labour"),
    ("City council approves the new tram line through the old harbour", "city"),
    ("Heat wave: hospitals postpone routine surgery as wards fill up", "health"),
    ("Researchers map the coastline that storms redrew last winter", "science"),
    ("Regional election: turnout hits a twenty-year high", "politics"),
    ("Fishing quotas cut again as cod stocks keep falling", "science"),
    ("Library opens overnight reading rooms for students", "city"),
    ("Ferry operator adds electric boats to the island route", "city"),
    ("Union and employers agree on apprenticeships for welders", "labour"),
    ("Clinic waiting times fall for the first time in three years", "health"),
]
_KO = [
    ("조선소 노동자들, 한 달 파업 끝에 주 4일제 합의", "labour"),
    ("시의회, 옛 항구를 지나는 새 트램 노선 승인", "city"),
    ("폭염에 병원들 정기 수술 연기… 병상 부족", "health"),
    ("연구진, 지난겨울 폭풍이 바꾼 해안선 지도 공개", "science"),
    ("지방선거 투표율 20년 만에 최고치", "politics"),
    ("대구 어획량 감소로 조업 할당량 또 축소", "science"),
    ("도서관, 학생들을 위해 밤샘 열람실 개방", "city"),
    ("여객선 회사, 섬 노선에 전기 선박 투입", "city"),
    ("노사, 용접공 견습 제도 도입에 합의", "labour"),
    ("진료 대기 시간 3년 만에 처음으로 줄어", "health"),
]
_SUMMARY_EN = ("After weeks of talks the two sides signed an agreement on Tuesday evening. "
               "The deal covers pay, hours and training, and takes effect next month.")
_SUMMARY_KO = "양측은 몇 주간의 협상 끝에 화요일 저녁 합의서에 서명했다. 합의에는 임금과 근무 시간, 교육이 포함되며 다음 달부터 시행된다."


def sample_list(locale: str = "en") -> ListView:
    name = "오늘의 다이제스트" if locale.startswith("ko") else "Daily Digest"
    return ListView(name=name, slug="daily", address="Example News, 1 Harbour Road, 12345 Example City",
                    sender="Example News")


def sample_stories(count: int = 10, locale: str = "en", *, summary_repeat: int = 1) -> list[StoryView]:
    """`count` stories (cycling through ten headlines); `summary_repeat` makes long summaries."""
    korean = locale.startswith("ko")
    titles = _KO if korean else _EN
    summary = " ".join([_SUMMARY_KO if korean else _SUMMARY_EN] * summary_repeat)
    stories = []
    for index in range(count):
        title, topic = titles[index % len(titles)]
        if index >= len(titles):
            title = f"{title} ({index // len(titles) + 1})"
        slug = f"story-{index + 1}"
        stories.append(StoryView(
            id=index + 1, headline=title, url=f"https://alpha.example/{slug}", summary=summary,
            image_url="https://alpha.example/images/lead.jpg" if index == 0 else "", topics=[topic],
            sources=[SourceLink("Alpha", f"https://alpha.example/{slug}"),
                     SourceLink("Beta", f"https://beta.example/{slug}")],
            related=[SourceLink(titles[(index + 3) % len(titles)][0], f"https://alpha.example/related-{index + 1}")],
        ))
    return stories
