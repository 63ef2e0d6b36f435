package dev.wsproxy.internal;

import java.nio.charset.StandardCharsets;
import java.util.List;

import org.jspecify.annotations.Nullable;

import dev.wsproxy.Backend;
import dev.wsproxy.BackendStatus;

/**
 * Weighted rendezvous (highest-random-weight) hashing: each candidate scores {@code -weight / ln(u)}, where {@code u}
 * in (0, 1) comes from hashing the key with the backend's URI, and the highest score wins.
 *
 * <p>Why rendezvous and not a hash ring: a backend's score depends on the key and that backend only, so removing (or
 * taking down) one backend moves exactly the keys it had, each to its own runner-up, spread over the others in
 * proportion to their weights; adding one takes only the keys it now wins. There is no ring to build or keep in sync,
 * and no state at all: every proxy instance with the same candidates picks the same backend for the same key. The
 * price is O(candidates) hashes per pick, which is nothing next to a backend handshake. With equal weights the order
 * of the scores is the order of {@code u}, so this is plain rendezvous hashing; with weights, a backend wins a share
 * of the keys proportional to its weight (Schindelhauer and Schomaker's logarithmic method).
 */
final class Rendezvous {

    /** 2<sup>-53</sup>: turns the top 53 bits of a hash into a double in [0, 1). */
    private static final double UNIT = 0x1.0p-53;

    private Rendezvous() {
    }

    /** The candidate with the highest score for {@code keyHash}; {@code null} when there is none. */
    static @Nullable Backend pick(List<BackendStatus> candidates, long keyHash) {
        Backend best = null;
        double bestScore = 0;
        String bestUri = null;
        for (BackendStatus candidate : candidates) {
            Backend backend = candidate.backend();
            String uri = backend.uri().toString(); // normalised by Backend.of: the host's case does not count
            double score = score(keyHash, uri, backend.weight());
            // Equal scores (practically never) go to the smaller URI, so that the order of the list does not matter.
            if (best == null || score > bestScore || score == bestScore && uri.compareTo(bestUri) < 0) {
                best = backend;
                bestScore = score;
                bestUri = uri;
            }
        }
        return best;
    }

    static long keyHash(String key) {
        return XxHash64.hash(key.getBytes(StandardCharsets.UTF_8));
    }

    static double score(long keyHash, String backendUri, int weight) {
        return scoreOf(XxHash64.hash(keyHash, XxHash64.hash(backendUri.getBytes(StandardCharsets.UTF_8))), weight);
    }

    /** The score of the combined hash of a key and a backend: a finite positive number. */
    static double scoreOf(long hash, int weight) {
        // u must be in (0, 1): never 0, whose logarithm is infinite, and never 1, whose logarithm is 0 (a score of
        // -Infinity, the lowest of all where it should be the highest). The + 0.5 keeps it above 0, but at the top
        // the sum rounds: (2^53 - 1) + 0.5 is halfway between two doubles and rounds to the even one, 2^53, so the
        // largest hash gave exactly 1. Clamping to the double just below 1 changes that one value only (every other
        // u stays as it was, so the picks do not move) and keeps the order of the scores.
        double u = Math.min(((hash >>> 11) + 0.5) * UNIT, Math.nextDown(1.0));
        return -weight / Math.log(u);
    }
}
