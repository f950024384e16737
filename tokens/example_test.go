package tokens_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/telegraphy-go/telegraphy/tokens"
)

// The app issues a token for a user and the channels they may watch; the
// hub verifies it once.
func ExampleIssuer() {
	secret := []byte("an example secret of 32+ bytes..") // share it through TELEGRAPHY_SECRET
	issuer, err := tokens.NewIssuer(tokens.IssuerConfig{Secret: secret})
	if err != nil {
		log.Fatal(err)
	}
	token, err := issuer.Issue("17", []string{"shop.Order", "shop.Order:*", "user:17"})
	if err != nil {
		log.Fatal(err)
	}

	verifier, err := tokens.NewVerifier(tokens.VerifierConfig{Secret: secret})
	if err != nil {
		log.Fatal(err)
	}
	claims, err := verifier.Verify(context.Background(), token)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("subject:", claims.Subject, "lifetime:", claims.ExpiresAt.Sub(claims.IssuedAt.Time))
	fmt.Println("shop.Order:42 allowed:", tokens.Allowed(claims.Channels, "shop.Order:42"))
	fmt.Println("user:18 allowed:", tokens.Allowed(claims.Channels, "user:18"))

	// Each token connects once.
	_, err = verifier.Verify(context.Background(), token)
	fmt.Println("again:", errors.Is(err, tokens.ErrReplayed), tokens.Reason(err))
	// Output:
	// subject: 17 lifetime: 1m0s
	// shop.Order:42 allowed: true
	// user:18 allowed: false
	// again: true replayed
}

// Patterns are exact channel names, or prefixes ending in "*".
func ExampleAllowed() {
	grants := []string{"shop.Order", "shop.Order:*"}
	for _, ch := range []string{"shop.Order", "shop.Order:42", "shop.OrderLine", "user:17"} {
		fmt.Println(ch, tokens.Allowed(grants, ch))
	}
	// Output:
	// shop.Order true
	// shop.Order:42 true
	// shop.OrderLine false
	// user:17 false
}
