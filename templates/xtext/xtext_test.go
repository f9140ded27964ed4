package xtext

import (
	"strings"
	"testing"
)

// The cases below restate twitter-text's conformance/validate.yml, sections
// "lengths", "WeightedTweetsWithDiscountedEmojiCounterTest" (the v3 config
// with emoji parsing) and "UnicodeDirectionalMarkerCounterTest", with the
// expected weightedLength of each.
func TestLengthConformance(t *testing.T) {
	x10 := strings.Repeat("xxxxxxxxxx-", 25)
	cjk := "故人西辞黄鹤楼，烟花三月下扬州。孤帆远影碧空尽，唯见长江天际流。朱雀桥边野草花，乌衣巷口夕阳斜。旧时王谢堂前燕，飞入寻常百姓家。朝辞白帝彩云间，千里江陵一日还。两岸猿声啼不住，轻舟已过万重山。泪湿罗巾梦不成，夜深前殿按歌声。红颜未老恩先断，斜倚薰笼坐到明。独在异乡为异客，每逢佳节倍思亲。遥知兄弟登高处，遍插茱萸少一人。"
	kana := strings.Repeat("あいうえおかきくけこ", 12)
	host52 := strings.Repeat("あいうえおかきくけこ", 5) + "あい"
	family := "👨\u200d👩\u200d👧\u200d👦"
	tests := []struct {
		name string
		text string
		want int
	}{
		{"plain ASCII", "This is a test.", 15},
		{"http URL", "http://test.com", 23},
		{"https URL", "https://test.com", 23},
		{"URL without protocol", "test.com", 23},
		{"several URLs", "Test https://test.com test https://test.com test.com test", 86},
		{"regular tweet with url", "Hi http://test.co", 26},
		{"just url", "http://test.co", 23},
		{"285 chars", "285 chars-" + x10[:275], 285},
		{"url in the middle", "285 chars- http://www.twitter.com/jack " + x10[:264], 299},
		{"url at the end", x10[:264] + " http://www.twitter.com/jack ", 289},
		{"10 urls", strings.Repeat("https://www.twitter.com/aloha ", 10), 240},
		{"160 CJK", cjk, 320},
		{"3 latin + 160 CJK", "the" + cjk, 323},
		{"decomposed A-acute normalises to one", "282 chars-" + x10[:264] + "xxxxxA\u0301x", 281},
		{"composed A-acute", "\u00c1B", 2},
		{"Hebrew normalises to 3 chars", "A\ufb2c", 4},
		{"cat, smiley and a ZWJ family", "H🐱☺" + family, 7},
		{"emoji outside the BMP", "😷👾😡🔥💩", 10},
		{"skin tone and ZWJ", "🙋🏽👨\u200d🎤", 4},
		{"general punctuation", "This is a tweet with general punctuation characters: \u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200A\u200B ‐ ‑ ‒ – — ― ‖  ‗ ‘ ’ ‚ ‛ “ ” „ ‟ ′ ″ ‴ ‵ ‶ ‷", 110},
		{"64 character domain label is not a URL", strings.Repeat("randomurl", 7) + "s.com", 68},
		{"CJK host over 63 punycode chars is not a URL", kana + " http://" + host52 + "う.com", 358},
		{"CJK host within 63 punycode chars is a URL", kana + " http://" + host52 + ".com", 264},
		{"140 family emoji", strings.Repeat(family, 140), 280},
		{"keycap without FE0F", "1\u20e3", 2},
		{"Unicode 10 emoji and a tag-sequence flag", "Unicode 10.0 emoji: 🤪; 🧕; 🧕🏾; 🏴\U000E0067\U000E0062\U000E0065\U000E006E\U000E0067\U000E007F", 34},
		{"Unicode 9 emoji", "Unicode 9.0 emoji: 🤠; 💃; 💃🏾", 29},
		{"directional marks around an IDN URL", "\u2066\u202Ahttp://foobar.پاکستان/\u202C\u2069", 31},
		{"unicode outside the BMP (v3 weights)", "\U00010000\U0010ffff", 4},
		{"Hangul inside the BMP (v3 weights)", "저찀쯿쿿", 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Length(tt.text); got != tt.want {
				t.Errorf("Length(%q) = %d, want %d", tt.text, got, tt.want)
			}
		})
	}
}

func TestLengthEmojiForms(t *testing.T) {
	tests := []struct {
		name string
		text string
		want int
	}{
		{"flag", "🇫🇷", 2},
		{"two flags", "🇫🇷🇯🇵", 4},
		{"keycap with FE0F", "#\ufe0f\u20e3", 2},
		{"digit alone is a digit", "1", 1},
		{"copyright alone is text", "©", 1},
		{"copyright with FE0F is emoji", "©\ufe0f", 2},
		{"heart with FE0F", "❤\ufe0f", 2},
		{"rainbow flag ZWJ", "🏳\ufe0f\u200d🌈", 2},
		{"couple with skin tones", "🧑🏻\u200d❤\ufe0f\u200d💋\u200d🧑🏿", 2},
		{"trailing ZWJ is counted alone", "😷\u200d", 3},
		{"lone skin tone", "🏽", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Length(tt.text); got != tt.want {
				t.Errorf("Length(%q) = %d, want %d", tt.text, got, tt.want)
			}
		})
	}
}

// The URL cases restate validate.yml "urls" and "urls_without_protocol": a
// valid URL is found whole; an invalid one is not found as written.
func TestURLs(t *testing.T) {
	valid := []string{
		"http://example.com",
		"https://example.com/path/to/resource?search=foo&lang=en",
		"http://twitter.com/#!/twitter",
		"HTTPS://www.ExaMPLE.COM/index.html",
		"http://user:PASSW0RD@example.com:8080/login.php",
		"http://sports.yahoo.com/nfl/news;_ylt=Aom0;ylu=XyZ?slug=ap-superbowlnotebook",
		"http://192.168.0.1/index.html?src=asdf",
		"http://[3ffe:1900:4545:3:200:f8ff:fe21:67cf]:80/index.html",
		"http://test_underscore.twitter.com",
		"http://example.com?foo=$bar.;baz?BAZ&c=d-#top/?stories+",
		"http://☃.net/",
		"http://example.com/Русские_слова",
		"https://www.youtube.com/playlist?list=PL0ZPu8XSRTB7wZzn0mLHMvyzVFeRxbWn-",
		"example.com",
		"www.example.com",
		"t.co",
		"foo.co.jp",
		"example.com/path/to/resource?search=foo&lang=en",
	}
	for _, u := range valid {
		got := URLs(u)
		if len(got) != 1 || got[0] != [2]int{0, len(u)} {
			t.Errorf("URLs(%q) = %v, want the whole text", u, got)
		}
	}
	invalid := []string{
		"ftp://www.example.com/",
		"http://domain-dash_2314352345_dfasd.foo-cow_4352.com",
		"http://www.-domain4352.com/",
		"http://www.domain4352-.com/",
		"http://☃-.net/",
		"http://%e2%98%83.net/",
		"http://256.1.2.3/",
		"http://en.wikipedia.org/wiki/\"#Punctuation",
		"http://example.com/#anchor ",
		"http://test.-twitter.com",
	}
	for _, u := range invalid {
		got := URLs(u)
		if len(got) == 1 && got[0] == [2]int{0, len(u)} {
			t.Errorf("URLs(%q) = %v, want it not found whole", u, got)
		}
	}
}

func TestURLsInProse(t *testing.T) {
	tests := []struct {
		text string
		want []string
	}{
		{"See https://status.example.com/incidents/x.", []string{"https://status.example.com/incidents/x"}},
		{"(details at https://example.com/a_(b))", []string{"https://example.com/a_(b)"}},
		{"(details at https://example.com/a)", []string{"https://example.com/a"}},
		{"write to security@example.com today", nil},
		{"we use Node.js and config.yaml files", nil},
		{"e.g. this, i.e. that", nil},
		{"visit example.com/reset, then log in", []string{"example.com/reset"}},
		{"https://a.example.com and http://b.example.org/x?y=1", []string{"https://a.example.com", "http://b.example.org/x?y=1"}},
	}
	for _, tt := range tests {
		var got []string
		for _, r := range URLs(tt.text) {
			got = append(got, tt.text[r[0]:r[1]])
		}
		if strings.Join(got, "|") != strings.Join(tt.want, "|") {
			t.Errorf("URLs(%q) = %q, want %q", tt.text, got, tt.want)
		}
	}
}

func BenchmarkLength(b *testing.B) {
	s := "We are investigating unauthorized access to customer data 🔒. Details: https://status.example.com/incidents/unauthorized-access and example.com/faq. 故人西辞黄鹤楼"
	for b.Loop() {
		Length(s)
	}
}
