package bench

import (
	"context"
	"errors"
)

func newTarget(ctx context.Context, cfg Config) (target, error) {
	return nil, errors.New("bench: hub not available yet")
}
