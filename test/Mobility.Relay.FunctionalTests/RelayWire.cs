using System.Buffers;

namespace Mobility.Relay.FunctionalTests;

/// <summary>Raw relay-protocol client for the refusal tests: what a hostile or broken host would send.</summary>
internal sealed class RelayWire : IAsyncDisposable
{
    private readonly TcpClient _client = new();

    private NetworkStream Stream => _client.GetStream();

    public static async Task<RelayWire> ConnectAsync(IPEndPoint relay)
    {
        var wire = new RelayWire();
        await wire._client.ConnectAsync(relay).WithTimeout();
        return wire;
    }

    public Task SendAsync(RelayMessage message) => Stream.WriteAsync(message.Encode()).AsTask().WithTimeout();

    /// <summary>Reads one message of <paramref name="size"/> bytes (sizes are fixed per type).</summary>
    public async Task<RelayMessage> ReceiveAsync(int size)
    {
        var bytes = new byte[size];
        await Stream.ReadExactlyAsync(bytes).AsTask().WithTimeout();
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(bytes));
        Assert.True(RelayMessage.TryRead(ref reader, out var message));
        return message;
    }

    /// <summary>Register, read the challenge, answer with <paramref name="prove"/>'s proof, and return the relay's result.</summary>
    public async Task<RelayStatus> RegisterAsync(Func<byte[], RelayProof> prove)
    {
        await SendAsync(RelayRegister.Instance);
        var challenge = Assert.IsType<RelayChallenge>(await ReceiveAsync(RelayMessage.HeaderSize + RelayMessage.NonceSize));
        await SendAsync(prove(challenge.Nonce));
        return Assert.IsType<RelayResult>(await ReceiveAsync(RelayMessage.HeaderSize + 1)).Status;
    }

    /// <summary>True once the relay closed the connection (a read returns 0).</summary>
    public async Task<bool> ClosedByRelayAsync()
    {
        var buffer = new byte[64];
        try
        {
            return await Stream.ReadAsync(buffer).AsTask().WithTimeout() == 0;
        }
        catch (IOException)
        {
            return true;
        }
    }

    public ValueTask DisposeAsync()
    {
        _client.Dispose();
        return ValueTask.CompletedTask;
    }
}
