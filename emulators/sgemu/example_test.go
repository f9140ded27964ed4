package sgemu_test

import (
	"fmt"
	"strings"

	"github.com/breachcast/breachcast/emulators/sgemu"
)

// A rehearsal points the email channel at the emulator instead of SendGrid
// and shows the inbox to the team.
func ExampleServer_Start() {
	emu := sgemu.New(sgemu.Options{Keys: map[string][]string{"SG.rehearsal": nil}})
	url, err := emu.Start()
	if err != nil {
		panic(err)
	}
	defer emu.Close()
	// Send with email.New(email.Config{APIKey: "SG.rehearsal", BaseURL: url}),
	// then open url in a browser to see the emails customers would get.
	fmt.Println("inbox on loopback:", strings.HasPrefix(url, "http://127.0.0.1:"))
	fmt.Println("emails sent:", emu.Total())
	// Output:
	// inbox on loopback: true
	// emails sent: 0
}
