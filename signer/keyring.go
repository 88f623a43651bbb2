package signer

import (
	"crypto/ed25519"
	"fmt"
	"io"
)

// keyring holds a scheme's key material. Schemes keep it behind a pointer,
// and are themselves used through pointers, because fmt prints a pointer
// nested in a struct as an address whatever the verb: formatting a scheme,
// or any struct that holds one, never shows a key.
type keyring struct {
	hmac    []*macKey
	signing []ed25519.PrivateKey
	public  []ed25519.PublicKey // verification only; the signing keys' halves too
}

// Format prints "[redacted]" for every verb, so that even a keyring
// formatted directly cannot leak.
func (keyring) Format(f fmt.State, _ rune) {
	io.WriteString(f, "[redacted]")
}

// checkSecretsPresent rejects an empty list and empty secrets, which mostly
// come from an unset environment variable. example shows what to write.
func checkSecretsPresent(scheme string, secrets []string, example string) error {
	if len(secrets) == 0 {
		return fmt.Errorf("signer: %s: no secret; configure one, such as %s", scheme, example)
	}
	for i, s := range secrets {
		if s == "" {
			return fmt.Errorf("signer: %s: secret %d of %d is empty; is its environment variable set?", scheme, i+1, len(secrets))
		}
	}
	return nil
}
