package rooms_test

import (
	"fmt"

	"github.com/parley-chat/parley/rooms"
)

func ExampleNormalizeName() {
	for _, in := range []string{"Lobby", "Café", "two words", "evil\u202e"} {
		name, err := rooms.NormalizeName(in)
		fmt.Printf("%q %q %v\n", in, name, err != nil)
	}
	// Output:
	// "Lobby" "lobby" false
	// "Café" "café" false
	// "two words" "" true
	// "evil\u202e" "" true
}

func ExampleLooksLikeInvite() {
	// A /join argument is an invite exactly when it has the invite prefix.
	fmt.Println(rooms.LooksLikeInvite("lobby"), rooms.LooksLikeInvite("parley-invite:AQID"))
	// Output: false true
}
