package node

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// Names. A contact name is a local label the user types; a display name
// in a card comes from someone else. Both are kept in Unicode NFC; a name
// the user types is refused when it carries a control, invisible (format)
// or bidirectional control character, and a display name from a card has
// them removed. Two names that look alike count as the same name: their
// nameKey (NFKC, case folded, confusable letters of Cyrillic and Greek
// folded to the Latin ones they look like) is equal. So "bob\u200b",
// "Bob", "ｂｏｂ" and Cyrillic "Ьоb"-style lookalikes of "bob" cannot sit
// beside the contact "bob" unmarked.

// checkName validates a name the user typed (a contact name, a group
// name, this device's display name) and returns it in NFC: 1 to
// MaxNameSize bytes of UTF-8, no control, format or bidi control
// character, no leading or trailing space.
func checkName(name string) (string, error) {
	if !utf8.ValidString(name) {
		return "", fmt.Errorf("%w: not UTF-8", ErrInvalidName)
	}
	name = norm.NFC.String(name)
	switch {
	case name == "":
		return "", fmt.Errorf("%w: empty", ErrInvalidName)
	case len(name) > MaxNameSize:
		return "", fmt.Errorf("%w: longer than %d bytes", ErrInvalidName, MaxNameSize)
	case strings.TrimSpace(name) != name:
		return "", fmt.Errorf("%w: leading or trailing space", ErrInvalidName)
	}
	for _, r := range name {
		switch {
		case unicode.IsControl(r):
			return "", fmt.Errorf("%w: control character", ErrInvalidName)
		case unicode.Is(unicode.Cf, r) || unicode.Is(unicode.Bidi_Control, r):
			return "", fmt.Errorf("%w: invisible or text-direction character U+%04X", ErrInvalidName, r)
		}
	}
	return name, nil
}

// cleanDisplayName makes a display name from a card safe to show: NFC,
// without control, format or bidi control characters, trimmed; "unnamed"
// if nothing is left.
func cleanDisplayName(name string) string {
	name = strings.ToValidUTF8(name, "")
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || unicode.Is(unicode.Bidi_Control, r) {
			return -1
		}
		return r
	}, norm.NFC.String(name))
	name = strings.TrimSpace(name)
	for len(name) > MaxNameSize {
		_, size := utf8.DecodeLastRuneInString(name)
		name = name[:len(name)-size]
	}
	if name == "" {
		return "unnamed"
	}
	return name
}

var fold = cases.Fold()

// nameKey is what two names that look alike have in common.
func nameKey(name string) string {
	k := fold.String(norm.NFKC.String(name))
	return strings.Map(func(r rune) rune {
		if l, ok := confusable[r]; ok {
			return l
		}
		if unicode.IsSpace(r) {
			return ' '
		}
		return r
	}, k)
}

// confusable maps lowercase Cyrillic and Greek letters to the Latin
// letter they are drawn like (a subset of Unicode's confusables.txt,
// UTS #39, for the scripts whose letters pass for Latin ones).
var confusable = map[rune]rune{
	'а': 'a', 'в': 'b', 'е': 'e', 'ё': 'e', 'һ': 'h', 'і': 'i', 'ї': 'i', 'ј': 'j', 'к': 'k',
	'м': 'm', 'н': 'h', 'о': 'o', 'р': 'p', 'с': 'c', 'т': 't', 'у': 'y', 'х': 'x', 'ѕ': 's',
	'ԁ': 'd', 'ԛ': 'q', 'ԝ': 'w', 'ь': 'b', 'ɡ': 'g', 'ı': 'i',
	'α': 'a', 'β': 'b', 'ε': 'e', 'η': 'n', 'ι': 'i', 'κ': 'k', 'ν': 'v', 'ο': 'o', 'ρ': 'p',
	'τ': 't', 'υ': 'u', 'χ': 'x', 'ω': 'w', 'ϲ': 'c',
	'0': 'o', '1': 'l',
}
