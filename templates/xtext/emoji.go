package xtext

import (
	"sort"
	"unicode/utf8"
)

const (
	zwj       = 0x200D
	vs16      = 0xFE0F
	keycap    = 0x20E3
	tagCancel = 0xE007F
)

// emojiAt returns the byte length of the emoji (sequence) at the start of s,
// or 0 when s does not start with one. It recognises, as X counts them:
// flags (two regional indicators), keycaps ([0-9#*] FE0F? 20E3), and
// pictographs with an optional presentation selector, skin tone or tag
// sequence, joined by ZWJ into one emoji.
//
// Characters whose default presentation is text and that X counts as 1 when
// alone (©, ®, digits) are emoji only with FE0F or a keycap.
func emojiAt(s string) int {
	r, n := utf8.DecodeRuneInString(s)
	switch {
	case isRegional(r):
		if r2, n2 := utf8.DecodeRuneInString(s[n:]); isRegional(r2) {
			return n + n2
		}
		return n
	case r >= '0' && r <= '9' || r == '#' || r == '*':
		i := n
		if r2, n2 := utf8.DecodeRuneInString(s[i:]); r2 == vs16 {
			i += n2
		}
		if r2, n2 := utf8.DecodeRuneInString(s[i:]); r2 == keycap {
			return i + n2
		}
		return 0
	}
	i := element(s)
	if i == 0 {
		return 0
	}
	for {
		r2, n2 := utf8.DecodeRuneInString(s[i:])
		if r2 != zwj {
			return i
		}
		e := element(s[i+n2:])
		if e == 0 {
			return i
		}
		i += n2 + e
	}
}

// element matches one pictograph with its modifiers.
func element(s string) int {
	r, n := utf8.DecodeRuneInString(s)
	if !isPictographic(r) && !isModifier(r) {
		return 0
	}
	i := n
	r2, n2 := utf8.DecodeRuneInString(s[i:])
	switch {
	case r2 == vs16:
		i += n2
	case isModifier(r2):
		i += n2
	case r2 >= 0xE0020 && r2 <= 0xE007E: // tag sequence (subdivision flags)
		j := i
		for {
			r3, n3 := utf8.DecodeRuneInString(s[j:])
			if r3 >= 0xE0020 && r3 <= 0xE007E {
				j += n3
				continue
			}
			if r3 == tagCancel {
				i = j + n3
			}
			break
		}
	default:
		if r < 0x2000 { // ©, ® and friends: emoji only with FE0F
			return 0
		}
	}
	return i
}

func isRegional(r rune) bool { return r >= 0x1F1E6 && r <= 0x1F1FF }

func isModifier(r rune) bool { return r >= 0x1F3FB && r <= 0x1F3FF }

// isPictographic reports the Unicode Extended_Pictographic property.
func isPictographic(r rune) bool {
	i := sort.Search(len(pictographic), func(i int) bool { return pictographic[i][1] >= r })
	return i < len(pictographic) && pictographic[i][0] <= r
}

// pictographic lists the Extended_Pictographic ranges of Unicode's
// emoji-data.txt (Unicode 15), sorted.
var pictographic = [][2]rune{
	{0x00A9, 0x00A9}, {0x00AE, 0x00AE}, {0x203C, 0x203C}, {0x2049, 0x2049},
	{0x2122, 0x2122}, {0x2139, 0x2139}, {0x2194, 0x2199}, {0x21A9, 0x21AA},
	{0x231A, 0x231B}, {0x2328, 0x2328}, {0x2388, 0x2388}, {0x23CF, 0x23CF},
	{0x23E9, 0x23F3}, {0x23F8, 0x23FA}, {0x24C2, 0x24C2}, {0x25AA, 0x25AB},
	{0x25B6, 0x25B6}, {0x25C0, 0x25C0}, {0x25FB, 0x25FE}, {0x2600, 0x2605},
	{0x2607, 0x2612}, {0x2614, 0x2685}, {0x2690, 0x2705}, {0x2708, 0x2712},
	{0x2714, 0x2714}, {0x2716, 0x2716}, {0x271D, 0x271D}, {0x2721, 0x2721},
	{0x2728, 0x2728}, {0x2733, 0x2734}, {0x2744, 0x2744}, {0x2747, 0x2747},
	{0x274C, 0x274C}, {0x274E, 0x274E}, {0x2753, 0x2755}, {0x2757, 0x2757},
	{0x2763, 0x2767}, {0x2795, 0x2797}, {0x27A1, 0x27A1}, {0x27B0, 0x27B0},
	{0x27BF, 0x27BF}, {0x2934, 0x2935}, {0x2B05, 0x2B07}, {0x2B1B, 0x2B1C},
	{0x2B50, 0x2B50}, {0x2B55, 0x2B55}, {0x3030, 0x3030}, {0x303D, 0x303D},
	{0x3297, 0x3297}, {0x3299, 0x3299},
	{0x1F000, 0x1F0FF}, {0x1F10D, 0x1F10F}, {0x1F12F, 0x1F12F}, {0x1F16C, 0x1F171},
	{0x1F17E, 0x1F17F}, {0x1F18E, 0x1F18E}, {0x1F191, 0x1F19A}, {0x1F1AD, 0x1F1E5},
	{0x1F201, 0x1F20F}, {0x1F21A, 0x1F21A}, {0x1F22F, 0x1F22F}, {0x1F232, 0x1F23A},
	{0x1F23C, 0x1F23F}, {0x1F249, 0x1F3FA}, {0x1F400, 0x1F53D}, {0x1F546, 0x1F64F},
	{0x1F680, 0x1F6FF}, {0x1F774, 0x1F77F}, {0x1F7D5, 0x1F7FF}, {0x1F80C, 0x1F80F},
	{0x1F848, 0x1F84F}, {0x1F85A, 0x1F85F}, {0x1F888, 0x1F88F}, {0x1F8AE, 0x1F8FF},
	{0x1F90C, 0x1F93A}, {0x1F93C, 0x1F945}, {0x1F947, 0x1FAFF}, {0x1FC00, 0x1FFFD},
}
