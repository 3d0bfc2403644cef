// Check a Citcon IPN (Online API, CHOP), Java 17:
//   javac VerifyIpn.java && CITCON_TOKEN=... java VerifyIpn < body
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.Map;
import java.util.Objects;
import java.util.StringJoiner;
import java.util.TreeSet;

public final class VerifyIpn {
    /** form: the posted fields (a servlet's request.getParameter); token: your merchant token. */
    public static boolean valid(Map<String, String> form, String token)
            throws NoSuchAlgorithmException {
        String fields = form.get("fields"), sign = form.get("sign");
        if (fields == null || sign == null) return false;
        TreeSet<String> keys = new TreeSet<>();  // sorted
        keys.add("fields");
        for (String key : fields.split(",")) if (!key.isEmpty()) keys.add(key);
        StringJoiner text = new StringJoiner("&");
        for (String key : keys) {
            if (!form.containsKey(key)) return false;
            text.add(key + "=" + form.get(key));
        }
        byte[] md5 = MessageDigest.getInstance("MD5")
                .digest((text + "&token=" + token).getBytes(StandardCharsets.UTF_8));
        byte[] expected = HexFormat.of().formatHex(md5).getBytes(StandardCharsets.UTF_8);
        return MessageDigest.isEqual(expected, sign.toLowerCase().getBytes(StandardCharsets.UTF_8));
    }

    static Map<String, String> parseForm(String body) {
        Map<String, String> form = new HashMap<>();
        for (String pair : body.split("&")) {
            if (pair.isEmpty()) continue;
            String[] kv = pair.split("=", 2);
            form.put(URLDecoder.decode(kv[0], StandardCharsets.UTF_8),
                     kv.length > 1 ? URLDecoder.decode(kv[1], StandardCharsets.UTF_8) : "");
        }
        return form;
    }

    public static void main(String[] args) throws Exception {
        String body = new String(System.in.readAllBytes(), StandardCharsets.UTF_8);
        String token = Objects.requireNonNullElse(System.getenv("CITCON_TOKEN"), "");
        boolean ok;
        try {
            ok = valid(parseForm(body), token);
        } catch (IllegalArgumentException malformed) {  // a broken %-escape
            ok = false;
        }
        System.out.println(ok ? "valid" : "invalid");
        System.exit(ok ? 0 : 1);
    }
}
