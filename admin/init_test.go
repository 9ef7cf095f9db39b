package admin

import "testing"

func TestTemplatesParse(t *testing.T) {
	if len(pages) == 0 {
		t.Fatal("no pages")
	}
}
