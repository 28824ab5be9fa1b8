using VideoMatch.Contracts.V1;

namespace VideoMatch.Client;

/// <summary>
/// How a client's frames relate to the video they come from, when it resizes them to the model's input before
/// sending (the cheapest input for the server): the size to send at, and the map from the server's answers (in
/// the sent frames' pixels) back to the video's own pixels.
/// </summary>
/// <remarks>
/// The server's conventions, which this type repeats for the client: a frame whose orientation (landscape or
/// portrait) differs from a model that rotates to fit (<see cref="ModelInfo.RotatesToFit"/>) is turned, so it is
/// sent at the input's turned size; pixel centres sit at whole numbers, so sent pixel u covers video pixels around
/// (u + 0.5) · scale − 0.5, as the resize does.
/// </remarks>
/// <param name="VideoWidth">The video's own width in pixels.</param>
/// <param name="VideoHeight">The video's own height in pixels.</param>
/// <param name="Width">The width frames are sent at.</param>
/// <param name="Height">The height frames are sent at.</param>
public readonly record struct FrameScale(int VideoWidth, int VideoHeight, int Width, int Height)
{
    /// <summary>
    /// The size to send a <paramref name="videoWidth"/>×<paramref name="videoHeight"/> video's frames at: the
    /// model's input, turned when the server would turn the frame; when <paramref name="letterbox"/>, the largest
    /// part of it with the video's aspect ratio.
    /// </summary>
    public static FrameScale For(int videoWidth, int videoHeight, ModelInfo model, bool letterbox = false)
    {
        ArgumentNullException.ThrowIfNull(model);
        var (width, height) = ((int)model.InputWidth, (int)model.InputHeight);
        if (model.RotatesToFit && Turns(width, height, videoWidth, videoHeight))
        {
            (width, height) = (height, width);
        }

        if (letterbox && videoWidth > 0 && videoHeight > 0)
        {
            var scale = Math.Min((double)width / videoWidth, (double)height / videoHeight);
            (width, height) = (Math.Clamp((int)Math.Round(videoWidth * scale), 1, width), Math.Clamp((int)Math.Round(videoHeight * scale), 1, height));
        }

        return new FrameScale(videoWidth, videoHeight, width, height);
    }

    /// <summary>True when a model input of <paramref name="inputWidth"/>×<paramref name="inputHeight"/> that rotates to fit turns such a frame: their orientations differ (square ones never turn).</summary>
    public static bool Turns(int inputWidth, int inputHeight, int frameWidth, int frameHeight) =>
        inputWidth != inputHeight && frameWidth != frameHeight && (inputWidth > inputHeight) != (frameWidth > frameHeight);

    /// <summary>Video pixels per sent pixel, across (1 when the video's size is unknown).</summary>
    public double ScaleX => VideoWidth > 0 && Width > 0 ? (double)VideoWidth / Width : 1;

    /// <summary>Video pixels per sent pixel, down (1 when the video's size is unknown).</summary>
    public double ScaleY => VideoHeight > 0 && Height > 0 ? (double)VideoHeight / Height : 1;

    /// <summary>The mean of the two scales: turns a distance in video pixels into sent pixels (divide) and back.</summary>
    public double MeanScale => (ScaleX + ScaleY) / 2;

    /// <summary>A point of a sent frame in the video's pixels.</summary>
    public (float X, float Y) ToVideo(float x, float y) => (Map(x, ScaleX), Map(y, ScaleY));

    /// <summary>A match between two sent frames in the video's pixels.</summary>
    public KeypointMatch ToVideo(KeypointMatch match) =>
        new(Map(match.X0, ScaleX), Map(match.Y0, ScaleY), Map(match.X1, ScaleX), Map(match.Y1, ScaleY), match.Score);

    /// <summary>A response's matches in the video's pixels, in the server's order.</summary>
    public KeypointMatch[] ToVideo(Matches matches)
    {
        var list = MatchList.ToArray(matches);
        for (var i = 0; i < list.Length; i++)
        {
            list[i] = ToVideo(list[i]);
        }

        return list;
    }

    /// <summary>
    /// A frame0 → frame1 transform measured on the sent frames (row-major 3×3) in the video's pixels: S·M·S⁻¹ with
    /// S the sent-to-video map. Scaled so the last entry is 1.
    /// </summary>
    public double[] ToVideo(IReadOnlyList<double> matrix) => ToOriginal(matrix, this, this);

    /// <summary>
    /// An image0 → image1 transform measured on two images sent at other sizes than their own (row-major 3×3), in
    /// each image's own pixels: S₁·M·S₀⁻¹ with Sᵢ image i's sent-to-own map. Scaled so the last entry is 1.
    /// </summary>
    public static double[] ToOriginal(IReadOnlyList<double> matrix, FrameScale image0, FrameScale image1)
    {
        ArgumentNullException.ThrowIfNull(matrix);
        if (matrix.Count != 9)
        {
            throw new ArgumentException($"A transform has 9 entries (row-major 3×3); this one has {matrix.Count}.", nameof(matrix));
        }

        var (sx, sy) = (image1.ScaleX, image1.ScaleY);
        double[] s = [sx, 0, (0.5 * sx) - 0.5, 0, sy, (0.5 * sy) - 0.5, 0, 0, 1];
        var (ix, iy) = (image0.ScaleX, image0.ScaleY);
        double[] inverse = [1 / ix, 0, (0.5 / ix) - 0.5, 0, 1 / iy, (0.5 / iy) - 0.5, 0, 0, 1];
        var m = new double[9];
        for (var i = 0; i < 9; i++)
        {
            m[i] = matrix[i];
        }

        var result = Transforms.Multiply(Transforms.Multiply(s, m), inverse);
        var w = result[8];
        for (var i = 0; i < 9; i++)
        {
            result[i] /= w;
        }

        return result;
    }

    private static float Map(float sent, double scale) => (float)(((sent + 0.5) * scale) - 0.5);
}
