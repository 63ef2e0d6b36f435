package dev.wsproxy.internal;

/**
 * The {@code token} of HTTP (RFC 9110 section 5.6.2), the syntax of a header name and, by RFC 6265 section 4.1.1, of
 * a cookie name: one or more visible ASCII characters other than the delimiters {@code "(),/:;<=>?@[\]{}}. A name
 * outside it cannot arrive in a request Jetty accepts, so a setting that names one would never match.
 */
public final class HttpTokens {

    /** What a token may hold, for messages. */
    public static final String CHARACTERS = "letters, digits and !#$%&'*+-.^_`|~";

    private HttpTokens() {
    }

    /** Tells whether {@code name} is a token: not empty, and each character a {@code tchar}. */
    public static boolean isToken(String name) {
        if (name.isEmpty()) {
            return false;
        }
        for (int i = 0; i < name.length(); i++) {
            char c = name.charAt(i);
            if (c <= 0x20 || c >= 0x7f || "\"(),/:;<=>?@[\\]{}".indexOf(c) >= 0) {
                return false;
            }
        }
        return true;
    }
}
