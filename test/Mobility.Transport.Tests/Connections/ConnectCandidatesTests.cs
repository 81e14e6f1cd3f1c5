namespace Mobility.Transport.Tests.Connections;

/// <summary>
/// Which local addresses a resume attempt races (<see cref="PathSupervisor.Candidates"/>, a pure
/// function): the preferred source first, the host's other usable addresses of the endpoint's family
/// after it, the address of a path that died silently (or the OS's choice of it) last.
/// </summary>
public sealed class ConnectCandidatesTests
{
    private static readonly IPAddress A = IPAddress.Parse("10.231.1.2");
    private static readonly IPAddress B = IPAddress.Parse("10.231.2.2");
    private static readonly IPAddress V6 = IPAddress.Parse("fd00:231:2::2");
    private static readonly IPEndPoint Server = new(IPAddress.Parse("10.231.9.2"), 7396);
    private static readonly IPEndPoint Server6 = new(IPAddress.Parse("fd00:231:9::2"), 7396);

    private static string Order(IReadOnlyList<IPEndPoint> endpoints, IPAddress? preferred, IPAddress[] locals, IPAddress? suspect, IPAddress? routed = null)
        => string.Join(" | ", PathSupervisor.Candidates(endpoints, preferred, locals, suspect, _ => routed)
            .Select(c => $"{c.Endpoint} {(c.Source?.ToString() ?? "os")}{(c.OtherSource ? "*" : "")}"));

    [Fact]
    public void Without_other_addresses_an_attempt_connects_from_the_preferred_source_only_as_before()
    {
        Assert.Equal("10.231.9.2:7396 os", Order([Server], null, [], suspect: null));
        Assert.Equal("10.231.9.2:7396 10.231.2.2", Order([Server], B, [B], suspect: null));
        Assert.Equal("10.231.9.2:7396 os", Order([Server], null, [A], suspect: A, routed: A));
    }

    [Fact]
    public void The_os_choice_comes_first_and_the_address_it_routes_from_is_not_raced_twice()
    {
        Assert.Equal("10.231.9.2:7396 os | 10.231.9.2:7396 10.231.2.2*", Order([Server], null, [A, B], suspect: null, routed: A));
    }

    [Fact]
    public void After_a_silent_death_the_dead_paths_address_goes_last_also_when_the_os_would_choose_it()
    {
        // The daemon names no local address: the kernel's default route is the dead upstream.
        Assert.Equal("10.231.9.2:7396 10.231.2.2* | 10.231.9.2:7396 os", Order([Server], null, [A, B], suspect: A, routed: A));
        // A resume over B earlier made B's path the one that died: the OS's choice (A) is not suspect.
        Assert.Equal("10.231.9.2:7396 os | 10.231.9.2:7396 10.231.2.2*", Order([Server], null, [A, B], suspect: B, routed: A));
        // An explicit preferred source that is the dead one.
        Assert.Equal("10.231.9.2:7396 10.231.2.2* | 10.231.9.2:7396 10.231.1.2", Order([Server], A, [A, B], suspect: A));
        // The route unknown: the OS's choice stays first, the suspect address goes last.
        Assert.Equal("10.231.9.2:7396 os | 10.231.9.2:7396 10.231.2.2* | 10.231.9.2:7396 10.231.1.2*", Order([Server], null, [A, B], suspect: A));
    }

    [Fact]
    public void Other_sources_match_each_endpoints_family_and_the_endpoints_keep_their_order()
    {
        Assert.Equal("10.231.9.2:7396 os | 10.231.9.2:7396 10.231.2.2* | [fd00:231:9::2]:7396 os | [fd00:231:9::2]:7396 fd00:231:2::2*",
            Order([Server, Server6], null, [A, B, V6], suspect: null, routed: A));
    }

    [Fact]
    public void At_most_four_sources_are_raced_per_endpoint()
    {
        IPAddress[] many = [.. Enumerable.Range(1, 10).Select(i => IPAddress.Parse($"10.231.{i}.2"))];
        var candidates = PathSupervisor.Candidates([Server], null, many, suspect: null, _ => null);
        Assert.Equal(PathSupervisor.MaxRacedSources, candidates.Count);
        Assert.Null(candidates[0].Source);
        Assert.Equal(many.Take(PathSupervisor.MaxRacedSources - 1), candidates.Skip(1).Select(c => c.Source));
    }
}
