package dev.wsproxy.examples.quickstart;

import static java.nio.charset.StandardCharsets.UTF_8;
import static java.util.Objects.requireNonNull;

import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.time.Clock;
import java.time.Instant;
import java.util.Base64;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;

import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

import org.jspecify.annotations.Nullable;

import dev.wsproxy.AuthDecision;
import dev.wsproxy.Authenticator;
import dev.wsproxy.HandshakeRequest;

/**
 * An authenticator of your own: accepts upgrade requests that carry a token signed with a shared secret (HMAC-SHA256)
 * in {@code Authorization: Bearer ...} or, since browsers cannot set headers on a WebSocket, in the
 * {@code access_token} query parameter. A valid token's user goes to the backend as {@code X-User-Id}, percent-encoded
 * UTF-8 (replacing any header of that name the client sent), the {@code Authorization} header does not (the backend needs the user, not a
 * token it could replay), and its tenant becomes the {@code tenant} attribute, which a selector reads with
 * {@code request.attribute("tenant")}. A token in the query does reach the backend, as the proxy forwards the client's
 * query: backends must keep it out of their logs. A missing, forged or expired token gets {@code 401} with
 * {@code WWW-Authenticate}, before any backend connection.
 *
 * <pre>{@code
 * ProxyBuilder.create()
 *         .route("/ws/", Backend.of("ws://10.0.0.1:9000"))
 *         .authenticator(new SignedTokenAuthenticator(secret, Clock.systemUTC()));
 * }</pre>
 *
 * <p>A token is {@code payload + "." + base64url(hmac(payload))} with {@code payload} being
 * {@code base64url(user:tenant:expiry-epoch-seconds)}, both without padding; {@link #issue} makes one. As in a JWT,
 * the MAC covers the payload's text, not its decoded bytes, and the signature is compared as text, so each token has
 * exactly one accepted spelling: base64url decoders also take padding and ignore the unused low bits of the last
 * character, and a second spelling of a token would slip past anything keyed on the token string, like a revocation
 * list or a replay cache. It decides at once (no I/O), so it is safe to run on the request thread. Thread-safe.
 */
public final class SignedTokenAuthenticator implements Authenticator {

    private static final String ALGORITHM = "HmacSHA256";
    private static final Base64.Encoder ENCODER = Base64.getUrlEncoder().withoutPadding();
    private static final Base64.Decoder DECODER = Base64.getUrlDecoder();

    private final SecretKeySpec key;
    private final Clock clock;

    /**
     * Creates an authenticator for tokens signed with {@code secret}.
     *
     * @param secret the shared secret, at least 32 bytes
     * @param clock the clock expiry is checked against
     */
    public SignedTokenAuthenticator(byte[] secret, Clock clock) {
        requireNonNull(secret, "secret");
        if (secret.length < 32) {
            throw new IllegalArgumentException("secret: " + secret.length + " bytes (expected: at least 32)");
        }
        this.key = new SecretKeySpec(secret.clone(), ALGORITHM);
        this.clock = requireNonNull(clock, "clock");
    }

    /**
     * Issues a token, as your login service would.
     *
     * @param secret the shared secret
     * @param user the user id, without {@code :}
     * @param tenant the tenant, without {@code :}
     * @param expires when the token stops being accepted
     * @return the token
     */
    public static String issue(byte[] secret, String user, String tenant, Instant expires) {
        if (user.contains(":") || tenant.contains(":")) {
            throw new IllegalArgumentException("user and tenant must not contain ':'");
        }
        String payload = ENCODER.encodeToString((user + ":" + tenant + ":" + expires.getEpochSecond()).getBytes(UTF_8));
        return payload + "." + signature(new SecretKeySpec(secret, ALGORITHM), payload);
    }

    @Override
    public CompletionStage<AuthDecision> authenticate(HandshakeRequest request) {
        return CompletableFuture.completedFuture(decide(request));
    }

    private AuthDecision decide(HandshakeRequest request) {
        // authenticator begins
        String token = bearerToken(request.header("Authorization"));
        if (token == null) {
            token = request.queryParameter("access_token");
        }
        if (token == null) {
            return AuthDecision.reject(401).withResponseHeader("WWW-Authenticate", "Bearer realm=\"ws\"");
        }
        String[] claims = verify(token);
        if (claims == null) {
            return AuthDecision.reject(401)
                    .withResponseHeader("WWW-Authenticate", "Bearer realm=\"ws\", error=\"invalid_token\"");
        }
        return AuthDecision.allow()
                .withBackendHeader("X-User-Id", percentEncoded(claims[0]))
                .withoutBackendHeader("Authorization")
                .withAttribute("tenant", claims[1]);
        // authenticator ends
    }

    /** Returns {@code [user, tenant]} of a token whose signature is right and which has not expired. */
    private String @Nullable [] verify(String token) {
        int dot = token.indexOf('.');
        if (dot <= 0 || dot != token.lastIndexOf('.')) {
            return null;
        }
        String encodedPayload = token.substring(0, dot);
        // The signature as text, over the payload as text: another spelling of either part fails here (see the class
        // comment). Constant time, so that the signature cannot be guessed character by character from response
        // times.
        if (!MessageDigest.isEqual(signature(key, encodedPayload).getBytes(UTF_8),
                token.substring(dot + 1).getBytes(UTF_8))) {
            return null;
        }
        byte[] payload;
        try {
            payload = DECODER.decode(encodedPayload);
        } catch (IllegalArgumentException notBase64) {
            return null;
        }
        String[] claims = new String(payload, UTF_8).split(":", -1);
        if (claims.length != 3 || !claims[2].matches("\\d{1,12}")
                || Instant.ofEpochSecond(Long.parseLong(claims[2])).isBefore(clock.instant())) {
            return null;
        }
        return new String[] {claims[0], claims[1]};
    }

    /**
     * The user as a header value: its UTF-8 bytes, percent-encoded but for RFC 3986's unreserved characters
     * ({@code alice} stays {@code alice}, {@code 王伟} is {@code %E7%8E%8B%E4%BC%9F}). A header carries visible ASCII
     * only ({@link AuthDecision#withBackendHeader} refuses anything else): raw, a name with other characters would
     * reach the backend changed, as another user.
     */
    static String percentEncoded(String user) {
        StringBuilder encoded = new StringBuilder(user.length());
        for (byte b : user.getBytes(UTF_8)) {
            int c = b & 0xFF;
            if (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || "-._~".indexOf(c) >= 0) {
                encoded.append((char) c);
            } else {
                encoded.append('%').append(HEX.charAt(c >> 4)).append(HEX.charAt(c & 0xF));
            }
        }
        return encoded.toString();
    }

    private static final String HEX = "0123456789ABCDEF";

    private static @Nullable String bearerToken(@Nullable String authorization) {
        if (authorization == null || !authorization.regionMatches(true, 0, "Bearer ", 0, 7)) {
            return null;
        }
        String token = authorization.substring(7).trim();
        return token.isEmpty() ? null : token;
    }

    private static String signature(SecretKeySpec key, String encodedPayload) {
        try {
            Mac mac = Mac.getInstance(ALGORITHM);
            mac.init(key);
            return ENCODER.encodeToString(mac.doFinal(encodedPayload.getBytes(UTF_8)));
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("HmacSHA256 is part of every JDK", e);
        }
    }

    @Override
    public String toString() {
        return "SignedTokenAuthenticator";
    }
}
