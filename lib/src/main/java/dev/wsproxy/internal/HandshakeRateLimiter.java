package dev.wsproxy.internal;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

import org.eclipse.jetty.util.NanoTime;

/**
 * Handshakes per second per client address: a token bucket per address, {@code perSecond} tokens a second up to a
 * burst of {@code perSecond}. A client address is a {@link ClientKey}: an IPv6 client shares the bucket of its block
 * (its /64 by default). Buckets that have refilled are dropped by {@link #sweep()}, so the map holds only the
 * addresses that handshook recently.
 *
 * <p>The sweep runs beside the takes. It drops a bucket only if it is still full under the bucket's lock, and marks it
 * dropped there: a take that found the bucket in the map before it was dropped sees the mark and takes from the
 * address's next bucket instead. Without it, such a take used up a token of a bucket no longer in the map, and the
 * address's next handshake got a full bucket: one handshake more than the rate per sweep, a bucket dropped while in
 * use.
 */
final class HandshakeRateLimiter {

    private final double perSecond;
    private final ConcurrentHashMap<ClientKey, Bucket> buckets;

    HandshakeRateLimiter(int perSecond) {
        this(perSecond, new ConcurrentHashMap<>());
    }

    /** With the map of buckets given: a test may act between a take's look-up and the take itself. */
    HandshakeRateLimiter(int perSecond, ConcurrentHashMap<ClientKey, Bucket> buckets) {
        this.perSecond = perSecond;
        this.buckets = buckets;
    }

    /** Takes a token for {@code address}; {@code false} when the address is over its rate. */
    boolean tryAcquire(ClientKey address) {
        while (true) {
            Bucket bucket = buckets.computeIfAbsent(address, key -> new Bucket());
            int taken = bucket.take();
            if (taken != Bucket.DROPPED) {
                return taken == Bucket.TAKEN;
            }
            // Dropped by the sweep between the look-up and the take, which the sweep then removes, if it has not yet.
            buckets.remove(address, bucket);
        }
    }

    /** Drops the buckets that are full again, each only if it still is when it is removed. */
    void sweep() {
        for (Map.Entry<ClientKey, Bucket> entry : buckets.entrySet()) {
            Bucket bucket = entry.getValue();
            if (bucket.dropIfFull()) {
                buckets.remove(entry.getKey(), bucket);
            }
        }
    }

    int addresses() {
        return buckets.size();
    }

    /** One address's tokens; guarded by itself. */
    final class Bucket {
        static final int TAKEN = 0;
        static final int REFUSED = 1;
        /** The sweep dropped the bucket: take from the address's next one. */
        static final int DROPPED = 2;

        private double tokens = perSecond;
        private long refilled = NanoTime.now();
        private boolean dropped;

        synchronized int take() {
            if (dropped) {
                return DROPPED;
            }
            refill();
            if (tokens < 1) {
                return REFUSED;
            }
            tokens--;
            return TAKEN;
        }

        /** Marks the bucket dropped if it is full: no take counts on it any more. */
        synchronized boolean dropIfFull() {
            refill();
            if (tokens >= perSecond) {
                dropped = true;
            }
            return dropped;
        }

        private void refill() {
            long now = NanoTime.now();
            tokens = Math.min(perSecond, tokens + NanoTime.elapsed(refilled, now) * perSecond / 1e9);
            refilled = now;
        }
    }
}
