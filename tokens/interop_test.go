package tokens_test

import (
	"context"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/telegraphy-go/telegraphy/internal/testenv"
	"github.com/telegraphy-go/telegraphy/tokens"
)

// mintInNode signs a token with nothing but Node.js' crypto module, the
// way an application in another language would.
const mintInNode = `
const crypto = require("crypto");
const b64 = (x) => Buffer.from(JSON.stringify(x)).toString("base64url");
const now = Math.floor(Date.now() / 1000);
const input = b64({ alg: "HS256", typ: "JWT" }) + "." +
  b64({ sub: "17", channels: ["shop.Order", "user:17"], jti: crypto.randomUUID(), iat: now, exp: now + 60 });
const sig = crypto.createHmac("sha256", process.env.SECRET).update(input).digest("base64url");
process.stdout.write(input + "." + sig);
`

func TestTokenMintedInNode(t *testing.T) {
	t.Parallel()
	node, err := exec.LookPath("node")
	if err != nil {
		testenv.Missing(t, "node not on PATH: %v", err)
	}
	cmd := exec.Command(node, "-e", mintInNode)
	cmd.Env = append(cmd.Environ(), "SECRET="+string(testSecret))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v", err)
	}
	v, err := tokens.NewVerifier(tokens.VerifierConfig{Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(out))
	claims, err := v.Verify(context.Background(), token)
	if err != nil {
		t.Fatalf("token minted in Node refused: %v\n%s", err, token)
	}
	if claims.Subject != "17" || !slices.Equal(claims.Channels, []string{"shop.Order", "user:17"}) {
		t.Errorf("claims %+v", claims)
	}
	if _, err := v.Verify(context.Background(), token); tokens.Reason(err) != "replayed" {
		t.Errorf("second use = %v, want replayed", err)
	}
}
