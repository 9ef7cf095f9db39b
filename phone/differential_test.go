package phone

// The port in parse.go is held to github.com/nyaruka/phonenumbers, the
// library Normalize used before: for every region's example numbers,
// written the ways people write them and damaged the ways people damage
// them, read in their own region and others, both must give the same
// E.164 number or the same refusal. The library is imported by tests
// only, so it never reaches the router binary.

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nyaruka/phonenumbers"
)

// referenceNormalize is Normalize as it was, on the library.
func referenceNormalize(input, region string, allowed []string) (string, error) {
	s := foldDigits(strings.TrimSpace(input))
	if s == "" || len(s) > maxInput {
		return "", ErrMalformed
	}
	if strings.HasPrefix(s, "00") {
		s = "+" + s[2:]
	}
	num, err := phonenumbers.Parse(s, region)
	if err != nil || !phonenumbers.IsValidNumber(num) {
		return "", ErrMalformed
	}
	switch phonenumbers.GetNumberType(num) {
	case phonenumbers.MOBILE, phonenumbers.FIXED_LINE_OR_MOBILE:
	default:
		return "", ErrNotAllowed
	}
	e164 := phonenumbers.Format(num, phonenumbers.E164)
	if len(allowed) == 0 {
		return e164, nil
	}
	for _, p := range allowed {
		if strings.HasPrefix(e164, p) {
			return e164, nil
		}
	}
	return "", ErrNotAllowed
}

// referenceParse is the library's reading of s without Normalize's
// folding and 40-byte bound, for the port's own entry points.
func referenceParse(s, region string) (string, numberKind) {
	num, err := phonenumbers.Parse(s, region)
	if err != nil || !phonenumbers.IsValidNumber(num) {
		return "", kindUnknown
	}
	kind := kindOther
	switch phonenumbers.GetNumberType(num) {
	case phonenumbers.MOBILE, phonenumbers.FIXED_LINE_OR_MOBILE:
		kind = kindMobile
	}
	return phonenumbers.Format(num, phonenumbers.E164), kind
}

func portParse(s, region string) (string, numberKind) {
	num, err := parse(s, region)
	if err != nil {
		return "", kindUnknown
	}
	kind := kindOf(&num)
	if kind == kindUnknown {
		return "", kindUnknown
	}
	return formatE164(&num), kind
}

// sameAnswer compares the port with the library on one input.
func sameAnswer(t *testing.T, in, region string, allowed []string) bool {
	t.Helper()
	want, wantErr := referenceNormalize(in, region, allowed)
	got, gotErr := Normalize(in, region, allowed)
	if got != want || !errors.Is(gotErr, wantErr) || (wantErr == nil) != (gotErr == nil) {
		t.Errorf("Normalize(%q, %q, %q) = %q, %v; phonenumbers says %q, %v", in, region, allowed, got, gotErr, want, wantErr)
		return false
	}
	// Past Normalize's 40-byte bound and folding, the parser itself.
	wantN, wantK := referenceParse(in, region)
	gotN, gotK := portParse(in, region)
	if gotN != wantN || gotK != wantK {
		t.Errorf("parse(%q, %q) = %q kind %d; phonenumbers says %q kind %d", in, region, gotN, gotK, wantN, wantK)
		return false
	}
	return true
}

var numberTypes = []phonenumbers.PhoneNumberType{
	phonenumbers.FIXED_LINE, phonenumbers.MOBILE, phonenumbers.FIXED_LINE_OR_MOBILE,
	phonenumbers.TOLL_FREE, phonenumbers.PREMIUM_RATE, phonenumbers.SHARED_COST,
	phonenumbers.VOIP, phonenumbers.PERSONAL_NUMBER, phonenumbers.PAGER,
	phonenumbers.UAN, phonenumbers.VOICEMAIL,
}

// writings returns the ways a visitor may type num, and damaged copies.
func writings(num *phonenumbers.PhoneNumber, rng *rand.Rand) []string {
	e164 := phonenumbers.Format(num, phonenumbers.E164)
	nsn := phonenumbers.GetNationalSignificantNumber(num)
	cc := e164[1 : len(e164)-len(nsn)]
	out := []string{
		e164,
		"00" + e164[1:],
		e164[1:], // country code without a plus
		phonenumbers.Format(num, phonenumbers.INTERNATIONAL),
		phonenumbers.Format(num, phonenumbers.NATIONAL),
		phonenumbers.Format(num, phonenumbers.RFC3966),
		phonenumbers.FormatOutOfCountryCallingNumber(num, "US"),
		phonenumbers.FormatOutOfCountryCallingNumber(num, "QA"),
		phonenumbers.FormatOutOfCountryCallingNumber(num, "DE"),
		nsn,
		"0" + nsn,
		cc + "0" + nsn,
		"+" + cc + "0" + nsn,
		e164 + " ext. 12",
		e164 + "#",
	}
	// Damage: a digit lost, one too many, one changed, a letter.
	for i := 0; i < 2 && len(nsn) > 1; i++ {
		p := rng.IntN(len(nsn))
		d := string(rune('0' + rng.IntN(10)))
		out = append(out,
			nsn[:p]+nsn[p+1:],
			"+"+cc+nsn[:p]+d+nsn[p:],
			nsn[:p]+d+nsn[p+1:],
			"+"+cc+nsn[:p]+d+nsn[p+1:],
			nsn[:p]+"ABC"[rng.IntN(3):]+nsn[p:],
		)
	}
	return out
}

// TestDifferential: every region's example numbers of every type, as
// visitors write them, read in their own region, in Qatar (the default
// site), in others and in none.
func TestDifferential(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 9))
	var regionList []string
	for r := range phonenumbers.GetSupportedRegions() {
		regionList = append(regionList, r)
	}
	slices.Sort(regionList)
	var examples []*phonenumbers.PhoneNumber
	var home []string
	for _, r := range regionList {
		for _, typ := range numberTypes {
			if n := phonenumbers.GetExampleNumberForType(r, typ); n != nil {
				examples, home = append(examples, n), append(home, r)
			}
		}
	}
	for cc := range phonenumbers.GetSupportedGlobalNetworkCallingCodes() {
		if n := phonenumbers.GetExampleNumberForNonGeoEntity(cc); n != nil {
			examples, home = append(examples, n), append(home, "001")
		}
	}
	if len(examples) < 1000 {
		t.Fatalf("only %d example numbers from phonenumbers", len(examples))
	}
	cases, failed, seen := 0, 0, 0
	for i, num := range examples {
		readIn := []string{home[i], "QA", "", regionList[rng.IntN(len(regionList))]}
		for _, w := range writings(num, rng) {
			for _, r := range readIn {
				if seen++; raceEnabled && seen%16 != 0 {
					continue
				}
				cases++
				allowed := [][]string{nil, qatarMobile}[cases%2]
				if !sameAnswer(t, w, r, allowed) {
					failed++
				}
				if failed > 20 {
					t.Fatal("too many differences")
				}
			}
		}
	}
	t.Logf("%d example numbers, %d cases compared", len(examples), cases)
}

// TestDifferentialOddities: inputs that take the parser's rarer paths.
func TestDifferentialOddities(t *testing.T) {
	for _, in := range []string{
		"tel:+97433123456", "tel:33123456;phone-context=+974", "33123456;phone-context=+974",
		"tel:33123456;phone-context=example.com", "tel:33123456;phone-context=", ";phone-context=+974",
		"+97433123456;isub=12", "+97433123456;ext=12", "+97433123456 x12", "+97433123456,,12",
		"+97433123456 ext 12", "+97433123456 extension 99", "(530) 583-6985 x302/x2303",
		"+1 800 FLOWERS", "+1 650 GOO GLE1", "33ABCDEF", "331234AB", "3312ABCD", "ı331234", "+44 ſ7400 123456",
		"+0097433123456", "+00974", "+999 33123456", "++97433123456", "＋97433123456", "+9743312345",
		"9743312345", "97433123456", "97444123456", "0097400", "+97400000000", "00000000",
		"+393123456789", "+390612345678", "0612345678", "+8001234 5678", "+80012345678", "+87012345678",
		"+882 3456 7890 12", "+979 123456789", "+1 242 359 1234", "+1 684 733 1234", "+7 701 123 4567",
		"+44 7624 123456", "+44 1534 456789", "+61 8 9162 1234", "+262 692 12 34 56", "+590 690 00 12 34",
		"+54 9 11 2345 6789", "+54 11 2345 6789", "011 15 2345 6789", "+52 1 55 1234 5678", "+55 11 9 6123 4567",
		"+86 138 0013 8000", "+49 1512 3456789", "+33 6 12 34 56 78", "+212 650 123456", "+98 912 345 6789",
		"٠٩١٢٣٤٥٦٧٨٩", "۰۹۱۲۳۴۵۶۷۸۹", "০১২৩৪৫৬৭৮৯", "३३१२३४५६", "+९७४३३१२३४५६", "𝟑𝟑𝟏𝟐𝟑𝟒𝟓𝟔",
		"33123456#", "33123456*", "*33123456", "33123456]", "33123456&&x]]", "x33123456", "/ x33123456",
		"００９７４３３１２３４５６", "٠٠٩٧٤٣٣١٢٣٤٥٦", "+٠٠٩٧٤٣٣١٢٣٤٥٦", "+００９７４３３１２３４５６", "０٣٣١٢٣٤٥٦", "００٠٩٧٤٣٣١٢٣٤٥٦",
		"\xff33123456", "33\x00123456", strings.Repeat("9", 17), strings.Repeat("9", 18), "+" + strings.Repeat("1", 30),
	} {
		for _, r := range []string{"QA", "US", "GB", "IT", "AR", "MX", "BR", "RU", "KZ", "", "ZZ", "001", "qa", "XK", "AC"} {
			sameAnswer(t, in, r, nil)
			sameAnswer(t, in, r, qatarMobile)
		}
	}
}

// FuzzDifferential: anything a visitor may type, in any region.
func FuzzDifferential(f *testing.F) {
	for _, s := range []string{"33123456", "0097433123456", "+974 3312 3456", "٣٣١٢٣٤٥٦", "\u202a+974 3312 3456\u202c",
		"44123456", "+447400123456", "+97433123456 ext 12", "tel:+97433123456", "+1 800 FLOWERS", "00",
		"07400 123456", "+393123456789", "tel:1234;phone-context=+974"} {
		f.Add(s, "QA", false)
		f.Add(s, "GB", true)
	}
	f.Fuzz(func(t *testing.T, in, region string, restrict bool) {
		var allowed []string
		if restrict {
			allowed = qatarMobile
		}
		sameAnswer(t, in, region, allowed)
	})
}

// TestMetadataCurrent regenerates metadata.go from the phonenumbers that
// go.mod pins and fails if the committed table differs: run
// `go generate ./phone/` after upgrading the library.
func TestMetadataCurrent(t *testing.T) {
	gocmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not found; cannot regenerate the table")
	}
	out := filepath.Join(t.TempDir(), "metadata.go")
	if b, err := exec.Command(gocmd, "run", "./internal/gen", "-o", out).CombinedOutput(); err != nil {
		t.Fatalf("go run ./internal/gen: %v\n%s", err, b)
	}
	fresh, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile("metadata.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fresh, committed) {
		t.Error("phone/metadata.go is not what phone/internal/gen makes of the pinned phonenumbers: run `go generate ./phone/` and commit it")
	}
}
