-- Just enough of the S3 REST API for the benchmark, on top of nginx's static
-- file handler (which does the heavy lifting: sendfile, Range, HEAD).
--
--   GET/HEAD /{bucket}/{key}   object, ETag = quoted MD5 from the manifest,
--                              If-Match checked here (412 on mismatch); with
--                              x-amz-checksum-mode: ENABLED, HEAD and whole-object
--                              GETs carry the full-object CRC64NVME, as S3 does
--                              for objects it gave its default checksum
--   GET /{bucket}?list-type=2  ListObjectsV2 (prefix, delimiter, max-keys,
--                              continuation-token, start-after, encoding-type)
--
-- Authentication headers and query signatures are ignored. The manifest is
-- loaded once in the master process (init_by_lua) and shared copy-on-write by
-- the workers, so a request costs a table lookup.
local _M = {}

local objects = {}  -- key -> {size, md5, mtime, crc}
local keys = {}     -- keys in S3 (UTF-8 byte) order, as the manifest lists them
local bucket_name = "bench"

function _M.load(manifest, bucket)
    bucket_name = bucket
    for line in io.lines(manifest) do
        local key, size, md5, mtime, crc = line:match("^(.-)\t(%d+)\t(%x+)\t(%S+)\t(%S+)$")
        if key then
            objects[key] = { size = tonumber(size), md5 = md5, mtime = mtime, crc = crc }
            keys[#keys + 1] = key
        end
    end
end

local function xml_escape(s)
    return (s:gsub("&", "&amp;"):gsub("<", "&lt;"):gsub(">", "&gt;"):gsub('"', "&quot;"))
end

local function s3_error(status, code, message)
    ngx.status = status
    ngx.header["Content-Type"] = "application/xml"
    ngx.print('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>', code,
        "</Code><Message>", xml_escape(message), "</Message></Error>")
    return ngx.exit(status)
end

-- Index of the first key strictly greater than `after` (keys are sorted).
local function first_index_after(after)
    local lo, hi = 1, #keys + 1
    while lo < hi do
        local mid = math.floor((lo + hi) / 2)
        if keys[mid] <= after then lo = mid + 1 else hi = mid end
    end
    return lo
end

local function list_objects_v2(args)
    local prefix = args.prefix or ""
    local delimiter = args.delimiter
    if delimiter == "" then delimiter = nil end
    local max_keys = math.min(tonumber(args["max-keys"] or 1000) or 1000, 1000)
    local url_encoded = args["encoding-type"] == "url"
    local enc = url_encoded and ngx.escape_uri or xml_escape

    local after = args["start-after"] or ""
    local token = args["continuation-token"]
    if token and token ~= "" then
        after = ngx.decode_base64(token)
        if not after then return s3_error(400, "InvalidArgument", "bad continuation token") end
    end

    local out, count, last, truncated = {}, 0, nil, false
    local seen_prefixes = {}
    local i = first_index_after(after)
    while i <= #keys do
        local key = keys[i]
        if key:sub(1, #prefix) ~= prefix then
            if key > prefix then break end  -- past the prefix: nothing more can match
        else
            if count >= max_keys then truncated = true break end
            local common
            if delimiter then
                local at = key:find(delimiter, #prefix + 1, true)
                if at then common = key:sub(1, at + #delimiter - 1) end
            end
            if common then
                -- Keys under one common prefix are contiguous: it is listed
                -- once, and a continuation token resumes past all of them.
                if not seen_prefixes[common] then
                    seen_prefixes[common] = true
                    out[#out + 1] = "<CommonPrefixes><Prefix>" .. enc(common) .. "</Prefix></CommonPrefixes>"
                    count = count + 1
                end
                last = common .. "\255"
            else
                local o = objects[key]
                out[#out + 1] = "<Contents><Key>" .. enc(key) .. "</Key><LastModified>" .. o.mtime ..
                    "</LastModified><ETag>&quot;" .. o.md5 .. "&quot;</ETag><Size>" .. o.size ..
                    "</Size><StorageClass>STANDARD</StorageClass></Contents>"
                count = count + 1
                last = key
            end
        end
        i = i + 1
    end

    ngx.header["Content-Type"] = "application/xml"
    local head = { '<?xml version="1.0" encoding="UTF-8"?>\n',
        '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">',
        "<Name>", bucket_name, "</Name><Prefix>", enc(prefix), "</Prefix>",
        "<KeyCount>", count, "</KeyCount><MaxKeys>", max_keys, "</MaxKeys>",
        "<IsTruncated>", tostring(truncated), "</IsTruncated>" }
    if delimiter then head[#head + 1] = "<Delimiter>" .. enc(delimiter) .. "</Delimiter>" end
    if url_encoded then head[#head + 1] = "<EncodingType>url</EncodingType>" end
    if token then head[#head + 1] = "<ContinuationToken>" .. xml_escape(token) .. "</ContinuationToken>" end
    if truncated then
        head[#head + 1] = "<NextContinuationToken>" .. ngx.encode_base64(last) .. "</NextContinuationToken>"
    end
    ngx.print(table.concat(head), table.concat(out), "</ListBucketResult>")
    return ngx.exit(ngx.HTTP_OK)
end

-- access phase: emulated latency, routing, preconditions.
function _M.access(first_byte_delay)
    if first_byte_delay > 0 then ngx.sleep(first_byte_delay) end
    local uri = ngx.var.uri
    local bucket, key = uri:match("^/([^/]+)/(.+)$")
    if not bucket then
        bucket = uri:match("^/([^/]+)/?$")
        if bucket ~= bucket_name then return s3_error(404, "NoSuchBucket", "no such bucket") end
        local args = ngx.req.get_uri_args(100)
        if ngx.req.get_method() == "HEAD" then return ngx.exit(ngx.HTTP_OK) end
        if args["list-type"] ~= "2" then
            return s3_error(501, "NotImplemented", "only ListObjectsV2 is emulated")
        end
        return list_objects_v2(args)
    end
    if bucket ~= bucket_name then return s3_error(404, "NoSuchBucket", "no such bucket") end
    local o = objects[key]
    if not o then return s3_error(404, "NoSuchKey", "The specified key does not exist.") end
    local if_match = ngx.var.http_if_match
    if if_match then
        if if_match ~= "*" and if_match ~= '"' .. o.md5 .. '"' and if_match ~= o.md5 then
            return s3_error(412, "PreconditionFailed",
                "At least one of the pre-conditions you specified did not hold")
        end
        -- nginx would compare If-Match with its own (mtime-size) ETag: we did it already.
        ngx.req.clear_header("If-Match")
    end
    ngx.ctx.md5 = o.md5
    -- S3 sends the full-object checksum only when asked, and never with a part.
    if ngx.var.http_x_amz_checksum_mode == "ENABLED" and not ngx.var.http_range then
        ngx.ctx.crc = o.crc
    end
end

-- header filter: the S3-style ETag on object responses (200, 206, HEAD).
function _M.header_filter()
    local md5 = ngx.ctx.md5
    if md5 and ngx.status < 300 then
        ngx.header["ETag"] = '"' .. md5 .. '"'
        if ngx.ctx.crc then
            ngx.header["x-amz-checksum-crc64nvme"] = ngx.ctx.crc
            ngx.header["x-amz-checksum-type"] = "FULL_OBJECT"
        end
    end
end

return _M
