package dev.wsproxy.internal;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

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
    private final Map<ClientKey, AtomicInteger> perAddress = new ConcurrentHashMap<>();
    private final AtomicInteger total = new AtomicInteger();

    ConnectionLimits(int maxPerAddress, int maxTotal) {
        this.maxPerAddress = maxPerAddress;
        this.maxTotal = maxTotal;
    }

    /**
     * Takes a slot for {@code address}; the result is a {@link Permit} or a {@link Refusal}. The address's slot first,
     * then the total's, which is never counted beyond its limit: counted first, even for a moment, each refused retry
     * of an address at its limit held a slot of the total, and another client with a free one got 503.
     */
    Object acquire(ClientKey address) {
        boolean[] refused = {false};
        perAddress.compute(address, (key, count) -> {
            AtomicInteger current = count == null ? new AtomicInteger() : count;
            if (current.get() >= maxPerAddress) {
                refused[0] = true;
            } else {
                current.incrementAndGet();
            }
            return current.get() == 0 ? null : current;
        });
        if (refused[0]) {
            return Refusal.PER_ADDRESS;
        }
        if (total.getAndUpdate(count -> count < maxTotal ? count + 1 : count) >= maxTotal) {
            perAddress.computeIfPresent(address, (key, count) -> count.decrementAndGet() == 0 ? null : count);
            return Refusal.TOTAL;
        }
        return new Permit(address);
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
