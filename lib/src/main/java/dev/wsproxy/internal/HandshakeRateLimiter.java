package dev.wsproxy.internal;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

import org.eclipse.jetty.util.NanoTime;

/**
 * Handshakes per second per client address: a token bucket per address, {@code perSecond} tokens a second up to a
 * burst of {@code perSecond}. A client address is a {@link ClientKey}: an IPv6 client shares the bucket of its block
 * (its /64 by default). Buckets that have refilled are dropped by {@link #sweep()}, so the map holds only the
 * addresses that handshook recently.
 */
final class HandshakeRateLimiter {

    private final double perSecond;
    private final Map<ClientKey, Bucket> buckets = new ConcurrentHashMap<>();

    HandshakeRateLimiter(int perSecond) {
        this.perSecond = perSecond;
    }

    /** Takes a token for {@code address}; {@code false} when the address is over its rate. */
    boolean tryAcquire(ClientKey address) {
        return buckets.computeIfAbsent(address, key -> new Bucket()).take();
    }

    /** Drops the buckets that are full again. */
    void sweep() {
        buckets.values().removeIf(Bucket::isFull);
    }

    int addresses() {
        return buckets.size();
    }

    private final class Bucket {
        private double tokens = perSecond;
        private long refilled = NanoTime.now();

        synchronized boolean take() {
            refill();
            if (tokens < 1) {
                return false;
            }
            tokens--;
            return true;
        }

        synchronized boolean isFull() {
            refill();
            return tokens >= perSecond;
        }

        private void refill() {
            long now = NanoTime.now();
            tokens = Math.min(perSecond, tokens + NanoTime.elapsed(refilled, now) * perSecond / 1e9);
            refilled = now;
        }
    }
}
