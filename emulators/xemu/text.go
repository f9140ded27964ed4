package xemu

import (
	"regexp"
	"strings"
)

// MaxWeightedLength is X's limit on a post's weighted length.
const MaxWeightedLength = 280

// transformedURLLength is what every link counts for, whatever its length
// (X wraps it in a t.co link).
const transformedURLLength = 23

var urlPattern = regexp.MustCompile(`(?i)https?://[^\s]+`)

// WeightedLength is the length X counts a post text by (twitter-text v3):
// code points in the Latin, general punctuation and similar ranges count
// 1, every other code point (CJK, emoji...) counts 2, an emoji sequence
// (modifiers, variation selectors, ZWJ joins, flags, keycaps) counts 2 as a
// whole, and each http(s) link counts 23. Unlike twitter-text it does not
// NFC-normalise first or detect links without a scheme.
func WeightedLength(text string) int {
	units := 0
	rest := urlPattern.ReplaceAllStringFunc(text, func(string) string {
		units += transformedURLLength * 100
		return ""
	})
	rs := []rune(strings.ToValidUTF8(rest, "\uFFFD"))
	for i := 0; i < len(rs); {
		r := rs[i]
		if isRegional(r) && i+1 < len(rs) && isRegional(rs[i+1]) {
			units += 200
			i += 2
			continue
		}
		emoji := isEmojiBase(r)
		j := i + 1
		for j < len(rs) {
			c := rs[j]
			if c == 0xFE0F || c == 0x20E3 {
				emoji = true
				j++
				continue
			}
			if emoji && (isSkinTone(c) || isTag(c) || c == 0xFE0E) {
				j++
				continue
			}
			if emoji && c == 0x200D && j+1 < len(rs) && isEmojiBase(rs[j+1]) {
				j += 2
				continue
			}
			break
		}
		if emoji {
			units += 200
		} else {
			units += weight(r)
		}
		i = j
	}
	return (units + 99) / 100
}

// weight is the twitter-text v3 weight of one code point, in hundredths.
func weight(r rune) int {
	switch {
	case r <= 4351, r >= 8192 && r <= 8205, r >= 8208 && r <= 8223, r >= 8242 && r <= 8247:
		return 100
	}
	return 200
}

func isRegional(r rune) bool { return r >= 0x1F1E6 && r <= 0x1F1FF }
func isSkinTone(r rune) bool { return r >= 0x1F3FB && r <= 0x1F3FF }
func isTag(r rune) bool      { return r >= 0xE0020 && r <= 0xE007F }

// isEmojiBase covers the pictographic blocks; it is an approximation of
// the Unicode emoji property, good enough for length checks.
func isEmojiBase(r rune) bool {
	switch {
	case r >= 0x1F000 && r <= 0x1FAFF,
		r >= 0x2600 && r <= 0x27BF,
		r >= 0x2300 && r <= 0x23FF,
		r >= 0x2B00 && r <= 0x2BFF:
		return true
	}
	return false
}
