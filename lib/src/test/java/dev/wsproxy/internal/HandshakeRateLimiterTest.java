package dev.wsproxy.internal;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Function;

import org.junit.jupiter.api.Test;

/** The handshake rate per address, and its sweep of the buckets that have refilled, which runs beside the takes. */
class HandshakeRateLimiterTest {

    @Test
    void countsATakeOnTheAddressesNextBucketWhenTheSweepDropsItsBucketFirst() {
        // The sweep dropped a full bucket that a handshake had just looked up: its take used up a token of a bucket
        // no longer in the map, and the address's next handshake got a full one, a handshake more than the rate.
        // The sweep runs here between the first handshake's look-up and its take.
        AtomicReference<HandshakeRateLimiter> limiter = new AtomicReference<>();
        AtomicBoolean sweepOnce = new AtomicBoolean(true);
        ConcurrentHashMap<ClientKey, HandshakeRateLimiter.Bucket> buckets = new ConcurrentHashMap<>() {
            @Override
            public HandshakeRateLimiter.Bucket computeIfAbsent(ClientKey key,
                    Function<? super ClientKey, ? extends HandshakeRateLimiter.Bucket> newBucket) {
                HandshakeRateLimiter.Bucket bucket = super.computeIfAbsent(key, newBucket);
                if (sweepOnce.getAndSet(false)) {
                    limiter.get().sweep();
                }
                return bucket;
            }
        };
        limiter.set(new HandshakeRateLimiter(1, buckets));
        ClientKey address = key("192.0.2.1");

        assertThat(limiter.get().tryAcquire(address)).isTrue();
        assertThat(limiter.get().tryAcquire(address)).as("a second handshake within the second, at 1 a second")
                .isFalse();
        assertThat(limiter.get().addresses()).isOne();
    }

    /** The key of {@code address}, an IPv6 one by its /64 (the default). */
    private static ClientKey key(String address) {
        return ClientKey.of(Cidr.literal(address), address, 64);
    }
}
