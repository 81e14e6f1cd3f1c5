namespace Mobility.Transport.Tests;

internal static class ConnectionAssert
{
    /// <summary>Every byte one end sent was received by the other exactly once (both directions).</summary>
    public static void NoLossOrDuplicate(MobileConnection client, MobileConnection server)
    {
        Assert.Equal(client.Statistics.BytesSent, server.Statistics.BytesReceived);
        Assert.Equal(server.Statistics.BytesSent, client.Statistics.BytesReceived);
    }

    /// <summary>The connection still carries data both ways: <paramref name="size"/> random bytes client -> server, then back.</summary>
    public static async Task CarriesOnAsync(MobileConnection client, MobileConnection server, int size)
    {
        var payload = RandomNumberGenerator.GetBytes(size);
        await client.Stream.WriteAsync(payload).WithTimeout();
        var received = new byte[payload.Length];
        await server.Stream.ReadExactlyAsync(received).WithTimeout();
        Assert.Equal(payload, received);
        await server.Stream.WriteAsync(payload).WithTimeout();
        await client.Stream.ReadExactlyAsync(received).WithTimeout();
        Assert.Equal(payload, received);
    }
}
