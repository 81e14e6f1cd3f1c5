using Microsoft.Extensions.Configuration;

namespace Mobility.Daemon.Tests.Unit;

public sealed class OptionsValidatorTests
{
    [Fact]
    public void Defaults_are_valid()
        => Assert.True(new MobilitydOptionsValidator().Validate(null, new MobilitydOptions()).Succeeded);

    [Fact]
    public void Each_bad_value_is_reported_with_its_flag()
    {
        var options = new MobilitydOptions
        {
            Gns = "127.0.0.1",
            Http = "127.0.0.1",
            Addresses = ["not-an-ip"],
            Name = "bad name",
            TransportPort = 0,
        };
        options.AddressWatch.Debounce = TimeSpan.FromSeconds(1);
        options.Challenge.Attempts = 0;

        var result = new MobilitydOptionsValidator().Validate(null, options);

        Assert.True(result.Failed);
        var failures = string.Join('\n', result.Failures!);
        Assert.Contains("--gns", failures, StringComparison.Ordinal);
        Assert.Contains("--http", failures, StringComparison.Ordinal);
        Assert.Contains("--address", failures, StringComparison.Ordinal);
        Assert.Contains("Name", failures, StringComparison.Ordinal);
        Assert.Contains("TransportPort", failures, StringComparison.Ordinal);
        Assert.Contains("Debounce", failures, StringComparison.Ordinal);
        Assert.Contains("Challenge:Attempts", failures, StringComparison.Ordinal);
    }

    [Fact]
    public void A_tls_relay_needs_a_pin_and_a_pin_is_a_sha256()
    {
        var pin = new string('a', 64);
        var noPin = new MobilitydOptionsValidator().Validate(null, new MobilitydOptions { Relay = "198.18.2.2:7395,tls://198.18.2.2:443" });
        Assert.True(noPin.Failed);
        Assert.Contains("--relay-pin", string.Join('\n', noPin.Failures!), StringComparison.Ordinal);

        var badPin = new MobilitydOptionsValidator().Validate(null, new MobilitydOptions { Relay = "tls://198.18.2.2:443", RelayPin = "abcd" });
        Assert.True(badPin.Failed);
        Assert.Contains("'abcd' is not a SHA-256 fingerprint", string.Join('\n', badPin.Failures!), StringComparison.Ordinal);

        var badEndPoint = new MobilitydOptionsValidator().Validate(null, new MobilitydOptions { Relay = "tls://relay.example", RelayPin = pin });
        Assert.True(badEndPoint.Failed);

        var options = new MobilitydOptions { Relay = "198.18.2.2:7395, tls://198.18.2.2:443", RelayPin = string.Join(':', Enumerable.Repeat("AB", 32)) };
        Assert.True(new MobilitydOptionsValidator().Validate(null, options).Succeeded);
        Assert.Equal(
            [new RelayTarget(System.Net.IPEndPoint.Parse("198.18.2.2:7395"), Tls: false), new RelayTarget(System.Net.IPEndPoint.Parse("198.18.2.2:443"), Tls: true)],
            options.RelayTargets);
        Assert.Equal(Enumerable.Repeat((byte)0xAB, 32), Assert.Single(options.RelayPins));
    }

    [Fact]
    public void The_gns_tls_endpoint_is_tls_ip_port_and_needs_a_pin_and_tls_only_needs_it()
    {
        static string Failures(MobilitydOptions options)
        {
            var result = new MobilitydOptionsValidator().Validate(null, options);
            return result.Failed ? string.Join('\n', result.Failures!) : "";
        }

        Assert.Contains("--gns-pin", Failures(new MobilitydOptions { GnsTls = "tls://198.18.1.2:443" }), StringComparison.Ordinal);
        Assert.Contains("must be tls://IP:PORT", Failures(new MobilitydOptions { GnsTls = "198.18.1.2:443", GnsPin = new string('a', 64) }), StringComparison.Ordinal);
        Assert.Contains("'abcd' is not a SHA-256 fingerprint", Failures(new MobilitydOptions { GnsTls = "tls://198.18.1.2:443", GnsPin = "abcd" }), StringComparison.Ordinal);
        Assert.Contains("--gns-tls-only", Failures(new MobilitydOptions { GnsTlsOnly = true }), StringComparison.Ordinal);
        Assert.NotEqual("", Failures(new MobilitydOptions { GnsTls = "tls://gns.example", GnsPin = new string('a', 64) }));

        var options = new MobilitydOptions { GnsTls = "tls://198.18.1.2:443", GnsPin = string.Join(':', Enumerable.Repeat("CD", 32)), GnsTlsOnly = true };
        Assert.Equal("", Failures(options));
        Assert.Equal(System.Net.IPEndPoint.Parse("198.18.1.2:443"), options.GnsTlsEndPoint);
        Assert.Equal(Enumerable.Repeat((byte)0xCD, 32), Assert.Single(options.GnsPins));
    }

    [Fact]
    public void The_example_configuration_is_valid_and_matches_the_defaults()
    {
        var configuration = new Microsoft.Extensions.Configuration.ConfigurationBuilder()
            .AddJsonFile(Path.Combine(AppContext.BaseDirectory, "deploy", "mobilityd.json"))
            .Build();
        var options = new MobilitydOptions();
        Microsoft.Extensions.Configuration.ConfigurationBinder.Bind(configuration, options);
        var defaults = new MobilitydOptions();

        Assert.True(new MobilitydOptionsValidator().Validate(null, options).Succeeded);
        Assert.Equal("192.0.2.53:7353", options.Gns);
        Assert.Equal(defaults.Http, options.Http);
        Assert.Equal(defaults.Grpc, options.Grpc);
        Assert.Equal(defaults.ControlPort, options.ControlPort);
        Assert.Equivalent(defaults.Challenge, options.Challenge);
        Assert.Equivalent(defaults.Record, options.Record);
        Assert.Equivalent(defaults.AddressWatch, options.AddressWatch);
        Assert.Equivalent(defaults.ControlLimits, options.ControlLimits);
        Assert.Equivalent(defaults.Nat, options.Nat);
        Assert.Equivalent(defaults.Forwarding, options.Forwarding);
        Assert.Equivalent(defaults.Forwarding.Transport, options.Forwarding.Transport);
    }

    [Fact]
    public void The_example_configuration_shows_every_forwarding_nat_and_transport_key()
    {
        using var example = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "deploy", "mobilityd.json")));
        var root = example.RootElement;

        Assert.Empty(Missing(root.GetProperty("Nat"), typeof(Mobility.Daemon.Nat.NatOptions), []));
        // Forwarding:Allow holds per-port allow-lists: an example exposes no port to list.
        Assert.Empty(Missing(root.GetProperty("Forwarding"), typeof(Mobility.Daemon.Forwarding.ForwardingOptions), ["Allow"]));
        Assert.Empty(Missing(root.GetProperty("Forwarding").GetProperty("Transport"), typeof(Mobility.Daemon.Forwarding.TransportSettings), []));

        static string[] Missing(System.Text.Json.JsonElement section, Type type, string[] except)
            => [.. type.GetProperties()
                .Where(p => p.CanWrite && !except.Contains(p.Name) && !section.TryGetProperty(p.Name, out _))
                .Select(p => p.Name)];
    }

    [Fact]
    public void Off_turns_an_endpoint_off()
    {
        var options = new MobilitydOptions { Http = "off", Grpc = "off", Socket = "off" };
        Assert.True(new MobilitydOptionsValidator().Validate(null, options).Succeeded);
        Assert.Null(options.ResolveSocketPath());
        Assert.Null(options.ResolveGrpcSocketPath());
    }

    [Fact]
    public void The_grpc_socket_sits_beside_the_main_socket()
        => Assert.Equal("/tmp/x/mobilityd-grpc.sock", new MobilitydOptions { Socket = "/tmp/x/mobilityd.sock" }.ResolveGrpcSocketPath());

    [Fact]
    public void Fast_open_reaches_the_transport_options_and_its_queue_is_bounded()
    {
        var options = new MobilitydOptions();
        Assert.True(options.Forwarding.Transport.Apply(new Mobility.Transport.MobileConnectionOptions()).FastOpen);
        options.Forwarding.Transport.FastOpen = false;
        Assert.False(options.Forwarding.Transport.Apply(new Mobility.Transport.MobileConnectionOptions()).FastOpen);

        options.Forwarding.Transport.FastOpenQueue = 0;
        var result = new MobilitydOptionsValidator().Validate(null, options);
        Assert.True(result.Failed);
        Assert.Contains("Forwarding:Transport:FastOpenQueue", string.Join('\n', result.Failures!), StringComparison.Ordinal);
    }

    [Fact]
    public void Standby_paths_reach_the_transport_options_and_are_bounded()
    {
        var options = new MobilitydOptions();
        Assert.Equal(1, options.Forwarding.Transport.Apply(new Mobility.Transport.MobileConnectionOptions()).MaxStandbyPaths);
        options.Forwarding.Transport.MaxStandbyPaths = 0;
        Assert.Equal(0, options.Forwarding.Transport.Apply(new Mobility.Transport.MobileListenerOptions()).MaxStandbyPaths);
        Assert.False(new MobilitydOptionsValidator().Validate(null, options).Failed);

        options.Forwarding.Transport.MaxStandbyPaths = 9;
        var result = new MobilitydOptionsValidator().Validate(null, options);
        Assert.True(result.Failed);
        Assert.Contains("Forwarding:Transport:MaxStandbyPaths", string.Join('\n', result.Failures!), StringComparison.Ordinal);
    }
}
