package dev.wsproxy.internal;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

import org.jspecify.annotations.Nullable;

/**
 * Concurrent sessions per client address and in all (nginx {@code limit_conn}). A client address is a
 * {@link ClientKey}: an IPv6 client counts with the others of its block (its /64 by default). A session holds one
 * {@link Permit} from its handshake to its end; {@link Permit#release()} is idempotent, so every path can call it.
 * Per-address entries are removed when their count drops to zero, so the map holds only addresses with sessions.
 */
final class ConnectionLimits {

    /** Why a permit was refused. */
    enum Refusal {
        PER_ADDRESS, TOTAL
    }

    private final int maxPerAddress;
    private final int maxTotal;
    private final Map<ClientKey, AtomicInteger> perAddress;
    private final AtomicInteger total = new AtomicInteger();

    ConnectionLimits(int maxPerAddress, int maxTotal) {
        this(maxPerAddress, maxTotal, new ConcurrentHashMap<>());
    }

    /** With the map of per-address counts given: a test may act between an acquire's steps. */
    ConnectionLimits(int maxPerAddress, int maxTotal, ConcurrentHashMap<ClientKey, AtomicInteger> perAddress) {
        this.maxPerAddress = maxPerAddress;
        this.maxTotal = maxTotal;
        this.perAddress = perAddress;
    }

    /**
     * Takes a slot for {@code address}; the result is a {@link Permit} or a {@link Refusal}. The address's limit first,
     * then the total's, which is never counted beyond its limit: counted first, even for a moment, each refused retry
     * of an address at its limit held a slot of the total, and another client with a free one got 503. Both are
     * taken under the address's entry, and the address's slot counted only once the total's is: counted before and
     * given back when the total refused, it made a concurrent handshake of the same address find the address at its
     * limit, and that client got 429 for a refusal of the total. So {@link Refusal#PER_ADDRESS} means the address
     * holds its limit of permits, and {@link Refusal#TOTAL} that it does not but the total is full.
     */
    Object acquire(ClientKey address) {
        @Nullable Refusal[] refusal = {null};
        perAddress.compute(address, (key, count) -> {
            AtomicInteger current = count == null ? new AtomicInteger() : count;
            if (current.get() >= maxPerAddress) {
                refusal[0] = Refusal.PER_ADDRESS;
            } else if (total.getAndUpdate(all -> all < maxTotal ? all + 1 : all) >= maxTotal) {
                refusal[0] = Refusal.TOTAL;
            } else {
                current.incrementAndGet();
            }
            return current.get() == 0 ? null : current;
        });
        return refusal[0] != null ? refusal[0] : new Permit(address);
    }

    int sessions(ClientKey address) {
        AtomicInteger count = perAddress.get(address);
        return count == null ? 0 : count.get();
    }

    /** The addresses that hold sessions now. */
    int addresses() {
        return perAddress.size();
    }

    int total() {
        return total.get();
    }

    /** One session's slot. */
    final class Permit {
        private final ClientKey address;
        private final AtomicBoolean released = new AtomicBoolean();

        private Permit(ClientKey address) {
            this.address = address;
        }

        void release() {
            if (!released.compareAndSet(false, true)) {
                return;
            }
            perAddress.computeIfPresent(address, (key, count) -> count.decrementAndGet() == 0 ? null : count);
            total.decrementAndGet();
        }
    }
}
