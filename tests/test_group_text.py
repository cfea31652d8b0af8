"""Tokenising for story grouping: names, numbers, Korean."""

from digest.group.text import features, features_many, hangul_stem, stem, tokens


def test_english_words_are_lowercased_without_stopwords() -> None:
    assert tokens("The Quake hit the island of Qeshm") == ["quake", "hit", "island", "qeshm"]


def test_light_stemming_joins_inflections() -> None:
    assert stem("checks") == stem("checked") == stem("checking") == "check"
    assert stem("news") == "news"  # short words are left alone
    assert stem("business") == "business"


def test_numbers_survive_and_spaced_decimals_are_rejoined() -> None:
    assert "6.1" in tokens("a magnitude 6. 1 quake")
    assert "2013" in tokens("May 3, 2013")


def test_names_get_an_entity_feature_but_sentence_starts_do_not() -> None:
    bag = features("", "Police said Lindsay Lohan checked in. Rehab began")
    assert bag["E:lindsay"] == 1 and bag["E:lohan"] == 1
    assert "E:police" not in bag  # capitalised only because it opens the sentence
    assert "E:rehab" not in bag


def test_title_counts_more_than_body() -> None:
    bag = features("Earthquake", "earthquake")
    assert bag["earthquake"] == 4


def test_korean_particles_are_stripped_into_meaningful_units() -> None:
    assert hangul_stem("서울에서") == "서울"
    assert hangul_stem("지진이") == "지진"
    assert hangul_stem("난민들의") == "난민"
    assert hangul_stem("이다") == "이다"  # never strip down to one syllable
    words = tokens("서울에서 규모 5.4의 지진이 발생했다")
    assert "서울" in words and "지진" in words and "규모" in words
    # Inflected forms of one noun meet, which character bigrams alone would blur.
    assert set(tokens("방탄소년단은")) & set(tokens("방탄소년단이"))


def test_japanese_and_chinese_runs_become_bigrams() -> None:
    assert tokens("東京地震") == ["東京", "京地", "地震"]


def test_features_many_matches_features() -> None:
    pairs = [("Quake in Iran", "Ten people died."), ("", ""), ("Iran quake", "Iran")]
    bags = features_many(pairs)
    assert len(bags) == 3
    assert [bags.bag(d) for d in range(3)] == [features(*p) for p in pairs]
