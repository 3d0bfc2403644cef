<?php
// Check a Citcon IPN (Online API, CHOP): CITCON_TOKEN=... php verify_ipn.php < body
function citcon_ipn_valid(array $form, string $token): bool  // $form: $_POST
{
    if (!is_string($form['fields'] ?? null) || !is_string($form['sign'] ?? null)) {
        return false;
    }
    $keys = array_unique([...array_filter(explode(',', $form['fields']), 'strlen'), 'fields']);
    sort($keys, SORT_STRING);
    $pairs = [];
    foreach ($keys as $key) {
        if (!is_string($form[$key] ?? null)) {
            return false;
        }
        $pairs[] = "$key=$form[$key]";
    }
    $expected = md5(implode('&', $pairs) . '&token=' . $token);
    return hash_equals($expected, strtolower($form['sign']));
}

if (PHP_SAPI === 'cli' && realpath($argv[0]) === __FILE__) {
    parse_str(stream_get_contents(STDIN), $form);
    $ok = citcon_ipn_valid($form, (string) getenv('CITCON_TOKEN'));
    echo $ok ? "valid\n" : "invalid\n";
    exit($ok ? 0 : 1);
}
