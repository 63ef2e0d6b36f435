package dev.wsproxy.internal;

import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;

import org.jspecify.annotations.Nullable;

import dev.wsproxy.Backend;
import dev.wsproxy.BackendSelector;
import dev.wsproxy.SelectionContext;

/**
 * Sticky by client address: rendezvous hashing ({@link Rendezvous}) of the client's IP address over the candidates.
 *
 * <p>The key is the whole address (nginx's {@code ip_hash} uses only the first three octets of an IPv4 address), its
 * bytes, and an IPv4-mapped IPv6 address ({@code ::ffff:10.0.0.1}, what a dual-stack socket may report) is the IPv4
 * address it maps, so one client gets one backend whichever way it connected. The port is not part of the key. An
 * address that was never resolved (no socket address at all) hashes its host string. Stateless: one shared instance.
 */
enum IpHashSelector implements BackendSelector {
    INSTANCE;

    @Override
    public @Nullable Backend select(SelectionContext context) {
        return Rendezvous.pick(context.candidates(), keyHash(context.clientAddress()));
    }

    static long keyHash(InetSocketAddress clientAddress) {
        InetAddress address = clientAddress.getAddress();
        if (address == null) {
            return XxHash64.hash(clientAddress.getHostString().getBytes(StandardCharsets.UTF_8));
        }
        return XxHash64.hash(Cidr.normalize(address));
    }

    @Override
    public String toString() {
        return "ipHash";
    }
}
